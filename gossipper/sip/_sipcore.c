/* Native header indexing for gossipper.sip.message: one pass over a message's header
 * section that builds both the (name, value) list and the index by canonical name.
 *
 * It is the receive path's single biggest Python cost at high call rates (every
 * response is split, stripped, lower-cased and indexed), and it is plain byte work.
 * The rules are those of message._python_index_headers; anything this code does not
 * handle the same way for certain (a malformed line, a non-ASCII header name, bytes
 * that are not UTF-8) makes it return None, and the Python version then answers,
 * with its exact error text, so both backends behave identically.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* RFC 3261 compact forms and the common extension ones, as message._COMPACT. */
static const char *compact_name(char c) {
    switch (c) {
    case 'i': return "call-id";
    case 'f': return "from";
    case 't': return "to";
    case 'v': return "via";
    case 'm': return "contact";
    case 'l': return "content-length";
    case 'c': return "content-type";
    case 'k': return "supported";
    case 's': return "subject";
    case 'e': return "content-encoding";
    case 'o': return "event";
    case 'r': return "refer-to";
    case 'b': return "referred-by";
    case 'u': return "allow-events";
    case 'x': return "session-expires";
    default: return NULL;
    }
}

static int is_wsp(char c) { return c == ' ' || c == '\t'; }

static void strip_wsp(const char **start, const char **end) {
    while (*start < *end && is_wsp(**start)) (*start)++;
    while (*end > *start && is_wsp((*end)[-1])) (*end)--;
}

/* The canonical (lower-case, compact forms expanded) name; NULL with no error set when
 * the name is not plain ASCII, so that the caller falls back to Python's lower(). */
static PyObject *canonical_name(const char *name, Py_ssize_t size) {
    char lowered[256];
    if (size <= 0 || size > (Py_ssize_t)sizeof(lowered)) return NULL;
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 0x80) return NULL;
        lowered[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (char)c;
    }
    if (size == 1) {
        const char *full = compact_name(lowered[0]);
        if (full != NULL) return PyUnicode_InternFromString(full);
    }
    return PyUnicode_FromStringAndSize(lowered, size);
}

/* Appends `piece` to the value of the last header, as a folded continuation line does. */
static int fold_into_last(PyObject *headers, PyObject *piece) {
    Py_ssize_t last = PyList_GET_SIZE(headers) - 1;
    PyObject *pair = PyList_GET_ITEM(headers, last);
    PyObject *name = PyTuple_GET_ITEM(pair, 0);
    PyObject *value = PyTuple_GET_ITEM(pair, 1);
    PyObject *folded;
    if (PyUnicode_GET_LENGTH(value) == 0) {
        folded = piece;
        Py_INCREF(folded);
    } else {
        folded = PyUnicode_FromFormat("%U %U", value, piece);
        if (folded == NULL) return -1;
    }
    PyObject *replaced = PyTuple_Pack(2, name, folded);
    Py_DECREF(folded);
    if (replaced == NULL) return -1;
    return PyList_SetItem(headers, last, replaced); /* steals replaced, drops the old pair */
}

static PyObject *index_from(PyObject *headers, PyObject *canonical) {
    PyObject *index = PyDict_New();
    if (index == NULL) return NULL;
    Py_ssize_t count = PyList_GET_SIZE(headers);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyList_GET_ITEM(canonical, i);
        PyObject *value = PyTuple_GET_ITEM(PyList_GET_ITEM(headers, i), 1);
        PyObject *values = PyDict_GetItemWithError(index, key);
        if (values == NULL) {
            if (PyErr_Occurred()) goto fail;
            values = PyList_New(0);
            if (values == NULL) goto fail;
            int stored = PyDict_SetItem(index, key, values);
            Py_DECREF(values);
            if (stored < 0) goto fail;
        }
        if (PyList_Append(values, value) < 0) goto fail;
    }
    return index;
fail:
    Py_DECREF(index);
    return NULL;
}

static PyObject *index_headers(PyObject *self, PyObject *args) {
    Py_buffer data;
    Py_ssize_t start, end;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nn", &data, &start, &end)) return NULL;
    PyObject *headers = NULL, *canonical = NULL, *index = NULL, *result = NULL;
    if (start < 0 || end > data.len || start > end) {
        PyErr_SetString(PyExc_ValueError, "header section outside the message");
        goto done;
    }
    headers = PyList_New(0);
    canonical = PyList_New(0);
    if (headers == NULL || canonical == NULL) goto done;
    const char *cursor = (const char *)data.buf + start;
    const char *section_end = (const char *)data.buf + end;
    for (;;) {
        const char *newline = memchr(cursor, '\n', (size_t)(section_end - cursor));
        const char *line_end = newline != NULL ? newline : section_end;
        const char *line = cursor;
        const char *stop = line_end;
        if (stop > line && stop[-1] == '\r') stop--;
        if (line < stop && is_wsp(*line)) { /* a folded continuation of the last header */
            if (PyList_GET_SIZE(headers) == 0) goto fallback;
            const char *piece_start = line, *piece_end = stop;
            strip_wsp(&piece_start, &piece_end);
            PyObject *piece = PyUnicode_DecodeUTF8(piece_start, piece_end - piece_start, NULL);
            if (piece == NULL) goto fallback;
            int folded = fold_into_last(headers, piece);
            Py_DECREF(piece);
            if (folded < 0) goto done;
        } else {
            const char *colon = memchr(line, ':', (size_t)(stop - line));
            if (colon == NULL) goto fallback;
            const char *name_start = line, *name_end = colon;
            strip_wsp(&name_start, &name_end);
            if (name_start == name_end) goto fallback;
            const char *value_start = colon + 1, *value_end = stop;
            strip_wsp(&value_start, &value_end);
            PyObject *key = canonical_name(name_start, name_end - name_start);
            if (key == NULL) goto fallback;
            PyObject *name = PyUnicode_DecodeUTF8(name_start, name_end - name_start, NULL);
            PyObject *value = name != NULL ? PyUnicode_DecodeUTF8(value_start, value_end - value_start, NULL)
                                           : NULL;
            PyObject *pair = value != NULL ? PyTuple_Pack(2, name, value) : NULL;
            Py_XDECREF(name);
            Py_XDECREF(value);
            if (pair == NULL) {
                Py_DECREF(key);
                goto fallback;
            }
            int appended = PyList_Append(headers, pair) | PyList_Append(canonical, key);
            Py_DECREF(pair);
            Py_DECREF(key);
            if (appended < 0) goto done;
        }
        if (newline == NULL) break;
        cursor = newline + 1;
    }
    index = index_from(headers, canonical);
    if (index != NULL) result = PyTuple_Pack(2, headers, index);
    goto done;
fallback: /* the Python version decides, and words any error */
    PyErr_Clear();
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(headers);
    Py_XDECREF(canonical);
    Py_XDECREF(index);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"index_headers", index_headers, METH_VARARGS,
     "index_headers(data, start, end) -> (headers, index) or None: the header lines of "
     "data[start:end] as (name, value) pairs and by canonical name; None when the Python "
     "version must decide."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sipcore", "Native header indexing for gossipper.sip.message.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sipcore(void) { return PyModule_Create(&module); }
