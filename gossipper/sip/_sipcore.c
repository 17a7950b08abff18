/* The SIP receive and send path's native core: header indexing for gossipper.sip.message,
 * and batched UDP datagram I/O (recvmmsg/sendmmsg) for gossipper.sip.transport.
 *
 * Header indexing is one pass over a message's header section that builds both the
 * (name, value) list and the index by canonical name.
 *
 * It is the receive path's single biggest Python cost at high call rates (every
 * response is split, stripped, lower-cased and indexed), and it is plain byte work.
 * The rules are those of message._python_index_headers; anything this code does not
 * handle the same way for certain (a malformed line, a non-ASCII header name, bytes
 * that are not UTF-8) makes it return None, and the Python version then answers,
 * with its exact error text, so both backends behave identically.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

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

/* The canonical names peers send most, made once: a received message names a dozen
 * headers, and each would otherwise cost a new str. */
static const char *const known_names[] = {
    "via", "from", "to", "call-id", "cseq", "contact", "content-length", "content-type",
    "max-forwards", "user-agent", "subject", "allow", "supported", "record-route", "route",
    "expires", "server", "accept", "session-expires", "min-se", "require", "p-asserted-identity",
    "privacy", "www-authenticate", "authorization", "proxy-authenticate", "proxy-authorization",
    "event", "allow-events", "date", "timestamp", "organization", "rseq", "rack",
};
#define KNOWN_NAMES (sizeof(known_names) / sizeof(known_names[0]))
static PyObject *known_name_objects[KNOWN_NAMES];

static int make_known_names(void) {
    for (size_t i = 0; i < KNOWN_NAMES; i++) {
        known_name_objects[i] = PyUnicode_InternFromString(known_names[i]);
        if (known_name_objects[i] == NULL) return -1;
    }
    return 0;
}

static PyObject *known_or_new(const char *lowered, Py_ssize_t size) {
    for (size_t i = 0; i < KNOWN_NAMES; i++) {
        const char *known = known_names[i];
        if (known[0] == lowered[0] && (Py_ssize_t)strlen(known) == size && memcmp(known, lowered, (size_t)size) == 0) {
            Py_INCREF(known_name_objects[i]);
            return known_name_objects[i];
        }
    }
    return PyUnicode_FromStringAndSize(lowered, size);
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
        if (full != NULL) return known_or_new(full, (Py_ssize_t)strlen(full));
    }
    return known_or_new(lowered, size);
}

/* A tuple that holds only str can never be part of a reference cycle; CPython's
 * collector untracks such tuples itself, but only after scanning each once. A received
 * message makes a few dozen of them, which at thousands of calls a second is most of
 * what the young generation holds, so they leave the collector's lists at birth. */
static PyObject *untracked(PyObject *tuple) {
    if (tuple != NULL && PyObject_GC_IsTracked(tuple)) PyObject_GC_UnTrack(tuple);
    return tuple;
}

/* Appends `piece` to the last value, as a folded continuation line does. */
static int fold_into_last(PyObject *values, PyObject *piece) {
    Py_ssize_t last = PyList_GET_SIZE(values) - 1;
    PyObject *value = PyList_GET_ITEM(values, last);
    PyObject *folded;
    if (PyUnicode_GET_LENGTH(value) == 0) {
        folded = piece;
        Py_INCREF(folded);
    } else {
        folded = PyUnicode_FromFormat("%U %U", value, piece);
        if (folded == NULL) return -1;
    }
    return PyList_SetItem(values, last, folded); /* steals folded, drops the old value */
}

/* Every value of each canonical name, in order, as a tuple of str: a dict holding only
 * str and untracked tuples is itself left untracked by CPython. */
static PyObject *index_from(PyObject *values, PyObject *canonical) {
    PyObject *index = PyDict_New();
    if (index == NULL) return NULL;
    Py_ssize_t count = PyList_GET_SIZE(values);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyList_GET_ITEM(canonical, i);
        PyObject *value = PyList_GET_ITEM(values, i);
        PyObject *earlier = PyDict_GetItemWithError(index, key); /* borrowed */
        if (earlier == NULL && PyErr_Occurred()) goto fail;
        Py_ssize_t known = earlier != NULL ? PyTuple_GET_SIZE(earlier) : 0;
        PyObject *grown = PyTuple_New(known + 1);
        if (grown == NULL) goto fail;
        for (Py_ssize_t j = 0; j < known; j++) {
            PyObject *item = PyTuple_GET_ITEM(earlier, j);
            Py_INCREF(item);
            PyTuple_SET_ITEM(grown, j, item);
        }
        Py_INCREF(value);
        PyTuple_SET_ITEM(grown, known, value);
        int stored = PyDict_SetItem(index, key, untracked(grown));
        Py_DECREF(grown);
        if (stored < 0) goto fail;
    }
    return index;
fail:
    Py_DECREF(index);
    return NULL;
}

/* The header lines of buf[start:end]: with_pairs, ((name, value) list, index by canonical
 * name), else the index alone (a received message builds its list of pairs only when
 * something asks for it); Py_None (a new reference) when the Python version must
 * decide; NULL on error. */
static PyObject *index_section(const char *buf, Py_ssize_t start, Py_ssize_t end, int with_pairs) {
    PyObject *names = NULL, *values = NULL, *canonical = NULL, *index = NULL, *result = NULL;
    values = PyList_New(0);
    canonical = PyList_New(0);
    if (with_pairs) names = PyList_New(0);
    if (values == NULL || canonical == NULL || (with_pairs && names == NULL)) goto done;
    const char *cursor = buf + start;
    const char *section_end = buf + end;
    for (;;) {
        const char *newline = memchr(cursor, '\n', (size_t)(section_end - cursor));
        const char *line_end = newline != NULL ? newline : section_end;
        const char *line = cursor;
        const char *stop = line_end;
        if (stop > line && stop[-1] == '\r') stop--;
        if (line < stop && is_wsp(*line)) { /* a folded continuation of the last header */
            if (PyList_GET_SIZE(values) == 0) goto fallback;
            const char *piece_start = line, *piece_end = stop;
            strip_wsp(&piece_start, &piece_end);
            PyObject *piece = PyUnicode_DecodeUTF8(piece_start, piece_end - piece_start, NULL);
            if (piece == NULL) goto fallback;
            int folded = fold_into_last(values, piece);
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
            PyObject *value = PyUnicode_DecodeUTF8(value_start, value_end - value_start, NULL);
            if (value == NULL) {
                Py_DECREF(key);
                goto fallback;
            }
            int appended = PyList_Append(values, value) | PyList_Append(canonical, key);
            Py_DECREF(value);
            Py_DECREF(key);
            if (appended < 0) goto done;
            if (with_pairs) {
                PyObject *name = PyUnicode_DecodeUTF8(name_start, name_end - name_start, NULL);
                if (name == NULL) goto done; /* ASCII, as canonical_name checked */
                appended = PyList_Append(names, name);
                Py_DECREF(name);
                if (appended < 0) goto done;
            }
        }
        if (newline == NULL) break;
        cursor = newline + 1;
    }
    index = index_from(values, canonical);
    if (index == NULL) goto done;
    if (!with_pairs) {
        result = index;
        index = NULL;
        goto done;
    }
    Py_ssize_t count = PyList_GET_SIZE(values);
    PyObject *headers = PyList_New(count);
    if (headers == NULL) goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = untracked(PyTuple_Pack(2, PyList_GET_ITEM(names, i), PyList_GET_ITEM(values, i)));
        if (pair == NULL) {
            Py_DECREF(headers);
            goto done;
        }
        PyList_SET_ITEM(headers, i, pair);
    }
    result = PyTuple_Pack(2, headers, index);
    Py_DECREF(headers);
    goto done;
fallback: /* the Python version decides, and words any error */
    PyErr_Clear();
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(names);
    Py_XDECREF(values);
    Py_XDECREF(canonical);
    Py_XDECREF(index);
    return result;
}

static PyObject *index_headers(PyObject *self, PyObject *args) {
    Py_buffer data;
    Py_ssize_t start, end;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nn", &data, &start, &end)) return NULL;
    PyObject *result = NULL;
    if (start < 0 || end > data.len || start > end)
        PyErr_SetString(PyExc_ValueError, "header section outside the message");
    else
        result = index_section((const char *)data.buf, start, end, 1);
    PyBuffer_Release(&data);
    return result;
}

/* ---------------------------------------------------------------- whole messages
 *
 * parse_message does all of message.SipMessage.parse for a well-formed message in one
 * call: start line, blank line, headers, Content-Length and the facts every receiver
 * reads at once (request or response, status, method, Call-ID, CSeq method). Whatever
 * is not plainly well formed (leading CRLFs, bytes that are not UTF-8, a bad start line,
 * no blank line, a bad or unmet Content-Length) returns None, and the Python parser
 * decides and words the error, so the two agree on every input.
 */
static int is_token_char(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c != 0 && strchr("-.!%*_+`'~", c) != NULL;
}

/* 1 for a request line message._check_start_line accepts, 2 for a status line, 0 otherwise. */
static int start_line_kind(const char *line, Py_ssize_t size, int *status) {
    if (size >= 8 && memcmp(line, "SIP/2.0 ", 8) == 0) {
        if (size < 11) return 0;
        for (int i = 8; i < 11; i++)
            if (line[i] < '0' || line[i] > '9') return 0;
        if (line[8] < '1' || line[8] > '6') return 0;
        if (size > 11 && line[11] != ' ') return 0;
        *status = (line[8] - '0') * 100 + (line[9] - '0') * 10 + (line[10] - '0');
        return 2;
    }
    const char *first_space = memchr(line, ' ', (size_t)size);
    if (first_space == NULL || first_space == line) return 0;
    const char *second_space = memchr(first_space + 1, ' ', (size_t)(line + size - first_space - 1));
    if (second_space == NULL || second_space == first_space + 1) return 0;
    const char *version = second_space + 1;
    if (line + size - version != 7 || memcmp(version, "SIP/2.0", 7) != 0) return 0;
    for (const char *c = line; c < first_space; c++)
        if (!is_token_char((unsigned char)*c)) return 0;
    return 1;
}

/* Content-Length as message._content_length reads it from text[0:size]; -1 when Python
 * must decide. */
static long content_length_span(const char *text, Py_ssize_t size) {
    const char *start = text, *end = text + size;
    while (start < end && (*start == ' ' || *start == '\t' || *start == '\r')) start++;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) end--;
    if (end == start || end - start > 9) return -1;
    long length = 0;
    for (const char *c = start; c < end; c++) {
        if (*c < '0' || *c > '9') return -1;
        length = length * 10 + (*c - '0');
    }
    return length;
}

static long content_length_of(PyObject *value) {
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(value, &size);
    if (text == NULL) {
        PyErr_Clear();
        return -1;
    }
    return content_length_span(text, size);
}

static PyObject *first_value(PyObject *index, const char *name) {
    PyObject *values = PyDict_GetItemString(index, name); /* borrowed */
    if (values == NULL || PyTuple_GET_SIZE(values) == 0) return NULL;
    return PyTuple_GET_ITEM(values, 0);
}

/* The CSeq's method as str.split() finds it in ASCII text[0:size]. */
static PyObject *cseq_method_span(const char *text, Py_ssize_t size) {
    Py_ssize_t i = 0;
#define CSEQ_SPACE(c) ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n' || (c) == '\v' || (c) == '\f' || \
                       ((c) >= 0x1c && (c) <= 0x1f))
    while (i < size && CSEQ_SPACE(text[i])) i++;
    while (i < size && !CSEQ_SPACE(text[i])) i++;
    while (i < size && CSEQ_SPACE(text[i])) i++;
    Py_ssize_t start = i;
    while (i < size && !CSEQ_SPACE(text[i])) i++;
#undef CSEQ_SPACE
    return PyUnicode_FromStringAndSize(text + start, i - start);
}

/* The same for a CSeq header's value; NULL when Python decides (not ASCII). */
static PyObject *cseq_method_of(PyObject *cseq) {
    if (cseq == NULL) return PyUnicode_FromString("");
    if (!PyUnicode_IS_ASCII(cseq)) return NULL;
    return cseq_method_span((const char *)PyUnicode_DATA(cseq), PyUnicode_GET_LENGTH(cseq));
}

#define MAX_CONTENT_LENGTH (16L * 1024 * 1024) /* message.MAX_CONTENT_LENGTH */

/* Where a message's parts are, as message.SipMessage.parse finds them: the start line's
 * kind (1 request, 2 response) and status, its end, and the blank line's; 0 when the
 * message is not plainly well formed there (leading CRLFs, a bad start line, no blank
 * line) and Python must decide. */
struct frame {
    int kind, status;
    const char *newline, *line_end, *head_end, *body;
};

static int frame_of(const char *data, Py_ssize_t size, struct frame *frame) {
    if (size == 0 || data[0] == '\r' || data[0] == '\n') return 0;
    const char *end = data + size;
    const char *newline = memchr(data, '\n', (size_t)size);
    if (newline == NULL) return 0;
    const char *line_end = newline;
    while (line_end > data && line_end[-1] == '\r') line_end--;
    frame->status = 0;
    frame->kind = start_line_kind(data, line_end - data, &frame->status);
    if (frame->kind == 0) return 0;
    /* message._blank_line from the first line's end: the first line end followed by an empty
       line, "\n\n" or "\n\r\n". Hopping from line end to line end beats two memmem calls,
       whose set-up costs more than a SIP header section takes to scan. */
    const char *blank = newline;
    for (;;) {
        if (end - blank >= 2 && blank[1] == '\n') {
            frame->head_end = blank;
            frame->body = blank + 2;
            break;
        }
        if (end - blank >= 3 && blank[1] == '\r' && blank[2] == '\n') {
            frame->head_end = blank;
            frame->body = blank + 3;
            break;
        }
        blank = memchr(blank + 1, '\n', (size_t)(end - blank - 1));
        if (blank == NULL) return 0;
    }
    frame->newline = newline;
    frame->line_end = line_end;
    return 1;
}

static PyObject *parse_message(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "parse_message takes bytes");
        return NULL;
    }
    const char *data = PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    struct frame frame;
    if (!frame_of(data, size, &frame)) Py_RETURN_NONE;
    const char *end = data + size, *newline = frame.newline, *line_end = frame.line_end;
    const char *head_end = frame.head_end, *body = frame.body;
    int kind = frame.kind, status = frame.status;
    PyObject *first_line = PyUnicode_DecodeUTF8(data, line_end - data, NULL);
    if (first_line == NULL) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    Py_ssize_t section_start = 0, section_end = 0;
    PyObject *index;
    if (head_end > newline) {
        section_start = newline + 1 - data;
        section_end = head_end - data;
        index = index_section(data, section_start, section_end, 0);
    } else {
        index = PyDict_New();
    }
    if (index == NULL || index == Py_None) {
        Py_DECREF(first_line);
        return index;
    }
    Py_ssize_t body_size = end - body;
    PyObject *length = first_value(index, "content-length");
    if (length != NULL) {
        long expected = content_length_of(length);
        if (expected < 0 || expected > MAX_CONTENT_LENGTH || expected > body_size) {
            Py_DECREF(first_line);
            Py_DECREF(index);
            Py_RETURN_NONE;
        }
        body_size = expected;
    }
    PyObject *call_id = first_value(index, "call-id");
    PyObject *cseq_method = cseq_method_of(first_value(index, "cseq"));
    PyObject *method = kind == 1 ? PyUnicode_DecodeUTF8(data, (const char *)memchr(data, ' ', (size_t)size) - data,
                                                        NULL)
                                 : PyUnicode_FromString("");
    PyObject *call_id_value = call_id != NULL ? call_id : PyUnicode_FromString("");
    if (call_id != NULL) Py_INCREF(call_id_value);
    PyObject *result = NULL;
    if (method != NULL && call_id_value != NULL) {
        PyObject *status_code = kind == 2 ? PyLong_FromLong(status) : Py_None;
        if (kind != 2) Py_INCREF(status_code);
        /* the Call-ID is "" without one, as message.call_id answers */
        result = Py_BuildValue("(NNy#ONNNOnn)", first_line, index, body, body_size, kind == 1 ? Py_True : Py_False,
                               call_id_value, status_code, method, cseq_method != NULL ? cseq_method : Py_None,
                               section_start, section_end);
        first_line = index = call_id_value = method = NULL; /* stolen by N */
    }
    Py_XDECREF(first_line);
    Py_XDECREF(index);
    Py_XDECREF(call_id_value);
    Py_XDECREF(method);
    Py_XDECREF(cseq_method);
    return result;
}

/* ---------------------------------------------------------------- what was sent
 *
 * Every message a call sends is checked before it goes (a scenario that renders a broken
 * message is a scenario error, not a confused peer), and the facts the call keeps about
 * it (request or response, status, CSeq method, To) are read from it. Building the whole
 * parsed message for that, header strings and index included, was a tenth of a UAS's CPU
 * (bench/sip_rate.py --side uas). peek_message checks what parse_message checks, for the
 * plain ASCII messages a scenario renders, and builds only those facts; anything else
 * returns None and the full parser decides. */

/* name[0:size] equals the lower-case `lower` (ASCII), ignoring case. */
static int name_is(const char *name, Py_ssize_t size, const char *lower) {
    Py_ssize_t length = (Py_ssize_t)strlen(lower);
    if (size != length) return 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        char c = name[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
        if (c != lower[i]) return 0;
    }
    return 1;
}

static PyObject *peek_message(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "peek_message takes bytes");
        return NULL;
    }
    const char *data = PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    struct frame frame;
    if (!frame_of(data, size, &frame)) Py_RETURN_NONE;
    const char *end = data + size, *newline = frame.newline;
    const char *head_end = frame.head_end, *body = frame.body;
    int kind = frame.kind, status = frame.status;
    for (const char *c = data; c < head_end; c++)
        if ((unsigned char)*c >= 0x80) Py_RETURN_NONE;
    const char *cseq = NULL, *cseq_end = NULL, *to = NULL, *to_end = NULL, *length = NULL, *length_end = NULL;
    const char *cursor = newline + 1;
    while (head_end > newline && cursor <= head_end) {
        const char *next = memchr(cursor, '\n', (size_t)(head_end - cursor));
        const char *line = cursor, *stop = next != NULL ? next : head_end;
        if (stop > line && stop[-1] == '\r') stop--;
        if (line < stop && is_wsp(*line)) Py_RETURN_NONE; /* folding: the full parser joins it */
        const char *colon = memchr(line, ':', (size_t)(stop - line));
        if (colon == NULL) Py_RETURN_NONE;
        const char *name = line, *name_end = colon, *value = colon + 1, *value_end = stop;
        strip_wsp(&name, &name_end);
        strip_wsp(&value, &value_end);
        Py_ssize_t name_size = name_end - name;
        if (name_size <= 0 || name_size > 256) Py_RETURN_NONE;
        if (cseq == NULL && name_is(name, name_size, "cseq")) {
            cseq = value;
            cseq_end = value_end;
        } else if (to == NULL && (name_is(name, name_size, "to") || name_is(name, name_size, "t"))) {
            to = value;
            to_end = value_end;
        } else if (length == NULL && (name_is(name, name_size, "content-length") || name_is(name, name_size, "l"))) {
            length = value;
            length_end = value_end;
        }
        if (next == NULL) break;
        cursor = next + 1;
    }
    if (length != NULL) {
        long expected = content_length_span(length, length_end - length);
        if (expected < 0 || expected > MAX_CONTENT_LENGTH || expected > end - body) Py_RETURN_NONE;
    }
    PyObject *method = kind == 1 ? PyUnicode_FromStringAndSize(data, (const char *)memchr(data, ' ', (size_t)size) - data)
                                 : PyUnicode_FromString("");
    PyObject *cseq_method = cseq != NULL ? cseq_method_span(cseq, cseq_end - cseq) : PyUnicode_FromString("");
    PyObject *to_value = to != NULL ? PyUnicode_FromStringAndSize(to, to_end - to) : Py_None;
    if (to == NULL) Py_INCREF(to_value);
    PyObject *status_code = kind == 2 ? PyLong_FromLong(status) : Py_None;
    if (kind != 2) Py_INCREF(status_code);
    PyObject *result = NULL;
    if (method != NULL && cseq_method != NULL && to_value != NULL && status_code != NULL)
        result = untracked(PyTuple_Pack(5, kind == 1 ? Py_True : Py_False, method, status_code, cseq_method, to_value));
    Py_XDECREF(method);
    Py_XDECREF(cseq_method);
    Py_XDECREF(to_value);
    Py_XDECREF(status_code);
    return result;
}

/* ---------------------------------------------------------------- batched UDP I/O
 *
 * A UDP SIP socket at thousands of calls per second receives and sends a datagram per
 * message; one system call and one event-loop callback per datagram cost more than the
 * message's handling once the loop is busy. recv_batch takes every datagram waiting (up
 * to BATCH_MAX) in one recvmmsg, send_batch hands a turn's queued sends to the kernel in
 * one sendmmsg. Both run on the event loop's thread, with the GIL held and MSG_DONTWAIT,
 * so the receive buffers can be shared by every socket of the process.
 */
#define BATCH_MAX 64
#define DATAGRAM_MAX 65536
#define NOT_NUMERIC (-1) /* send_batch: a destination to resolve in Python */

static char *receive_space; /* BATCH_MAX datagrams; pages the kernel never writes stay unused */

/* Most datagrams come from the one peer: its address tuple is made once and reused. */
static struct sockaddr_storage last_source;
static socklen_t last_source_size;
static PyObject *last_source_tuple;

static PyObject *address_tuple(const struct sockaddr_storage *source, socklen_t size) {
    if (last_source_tuple != NULL && size == last_source_size && memcmp(source, &last_source, size) == 0) {
        Py_INCREF(last_source_tuple);
        return last_source_tuple;
    }
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = "";
    int port = 0;
    if (source->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)source;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        port = ntohs(v4->sin_port);
    } else if (source->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)source;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
        port = ntohs(v6->sin6_port);
        if (v6->sin6_scope_id != 0) { /* a link-local peer: "fe80::1%eth0", as Python names it */
            size_t used = strlen(host);
            char name[IF_NAMESIZE];
            if (if_indextoname(v6->sin6_scope_id, name) != NULL)
                snprintf(host + used, sizeof(host) - used, "%%%s", name);
            else
                snprintf(host + used, sizeof(host) - used, "%%%u", v6->sin6_scope_id);
        }
    }
    PyObject *tuple = Py_BuildValue("(si)", host, port);
    if (tuple == NULL) return NULL;
    Py_XSETREF(last_source_tuple, tuple);
    Py_INCREF(tuple);
    memcpy(&last_source, source, size);
    last_source_size = size;
    return tuple;
}

static PyObject *recv_batch(PyObject *self, PyObject *args) {
    int fd, limit;
    (void)self;
    if (!PyArg_ParseTuple(args, "ii", &fd, &limit)) return NULL;
    if (limit < 1 || limit > BATCH_MAX) limit = BATCH_MAX;
    if (receive_space == NULL) {
        receive_space = malloc((size_t)BATCH_MAX * DATAGRAM_MAX);
        if (receive_space == NULL) return PyErr_NoMemory();
    }
    struct mmsghdr headers[BATCH_MAX];
    struct iovec vectors[BATCH_MAX];
    struct sockaddr_storage sources[BATCH_MAX];
    memset(headers, 0, sizeof(headers[0]) * (size_t)limit);
    for (int i = 0; i < limit; i++) {
        vectors[i].iov_base = receive_space + (size_t)i * DATAGRAM_MAX;
        vectors[i].iov_len = DATAGRAM_MAX;
        headers[i].msg_hdr.msg_iov = &vectors[i];
        headers[i].msg_hdr.msg_iovlen = 1;
        headers[i].msg_hdr.msg_name = &sources[i];
        headers[i].msg_hdr.msg_namelen = sizeof(sources[i]);
    }
    int received = recvmmsg(fd, headers, (unsigned int)limit, MSG_DONTWAIT, NULL);
    if (received < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return PyList_New(0);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *batch = PyList_New(received);
    if (batch == NULL) return NULL;
    for (int i = 0; i < received; i++) {
        PyObject *data = PyBytes_FromStringAndSize(vectors[i].iov_base, headers[i].msg_len);
        PyObject *source = data != NULL ? address_tuple(&sources[i], headers[i].msg_hdr.msg_namelen) : NULL;
        PyObject *pair = source != NULL ? PyTuple_Pack(2, data, source) : NULL;
        Py_XDECREF(data);
        Py_XDECREF(source);
        if (pair == NULL) {
            Py_DECREF(batch);
            return NULL;
        }
        PyList_SET_ITEM(batch, i, pair);
    }
    return batch;
}

/* The last destination's socket address, kept: a run sends to one peer, over and over. */
static PyObject *last_destination_host;
static long last_destination_port = -1;
static struct sockaddr_storage last_destination;
static socklen_t last_destination_size;

/* 1 and the address filled in; 0 when the host is not a numeric address; -1 on error. */
static int destination_of(PyObject *address, struct sockaddr_storage *out, socklen_t *size) {
    PyObject *host, *port_object;
    if (!PyTuple_Check(address) || PyTuple_GET_SIZE(address) < 2) {
        PyErr_SetString(PyExc_TypeError, "destination must be a (host, port) tuple");
        return -1;
    }
    host = PyTuple_GET_ITEM(address, 0);
    port_object = PyTuple_GET_ITEM(address, 1);
    long port = PyLong_AsLong(port_object);
    if (port == -1 && PyErr_Occurred()) return -1;
    if (!PyUnicode_Check(host)) {
        PyErr_SetString(PyExc_TypeError, "destination host must be a str");
        return -1;
    }
    if (port < 0 || port > 65535) return 0; /* Python's sendto words the error */
    if (last_destination_host != NULL && port == last_destination_port &&
        (host == last_destination_host || PyUnicode_Compare(host, last_destination_host) == 0)) {
        memcpy(out, &last_destination, last_destination_size);
        *size = last_destination_size;
        return 1;
    }
    const char *text = PyUnicode_AsUTF8(host);
    if (text == NULL) return -1;
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *size = sizeof(*v4);
    } else if (strchr(text, '%') == NULL && inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *size = sizeof(*v6);
    } else {
        return 0; /* a name, or a scoped address: Python resolves it */
    }
    Py_INCREF(host);
    Py_XSETREF(last_destination_host, host);
    last_destination_port = port;
    memcpy(&last_destination, out, *size);
    last_destination_size = *size;
    return 1;
}

static PyObject *send_batch(PyObject *self, PyObject *args) {
    int fd;
    PyObject *queue;
    Py_ssize_t start;
    (void)self;
    if (!PyArg_ParseTuple(args, "iO!n", &fd, &PyList_Type, &queue, &start)) return NULL;
    Py_ssize_t count = PyList_GET_SIZE(queue);
    if (start < 0) start = 0;
    struct mmsghdr headers[BATCH_MAX];
    struct iovec vectors[BATCH_MAX];
    struct sockaddr_storage destinations[BATCH_MAX];
    while (start < count) {
        int prepared = 0, stop_code = 0;
        while (prepared < BATCH_MAX && start + prepared < count) {
            PyObject *item = PyList_GET_ITEM(queue, start + prepared);
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(item, 0))) {
                PyErr_SetString(PyExc_TypeError, "queue items must be (bytes, (host, port))");
                return NULL;
            }
            socklen_t size = 0;
            int known = destination_of(PyTuple_GET_ITEM(item, 1), &destinations[prepared], &size);
            if (known < 0) return NULL;
            if (known == 0) {
                stop_code = NOT_NUMERIC;
                break;
            }
            PyObject *data = PyTuple_GET_ITEM(item, 0);
            vectors[prepared].iov_base = PyBytes_AS_STRING(data);
            vectors[prepared].iov_len = (size_t)PyBytes_GET_SIZE(data);
            memset(&headers[prepared], 0, sizeof(headers[prepared]));
            headers[prepared].msg_hdr.msg_iov = &vectors[prepared];
            headers[prepared].msg_hdr.msg_iovlen = 1;
            headers[prepared].msg_hdr.msg_name = &destinations[prepared];
            headers[prepared].msg_hdr.msg_namelen = size;
            prepared++;
        }
        int sent = 0;
        while (sent < prepared) {
            int done = sendmmsg(fd, headers + sent, (unsigned int)(prepared - sent), MSG_DONTWAIT);
            if (done < 0) {
                if (errno == EINTR) continue;
                return Py_BuildValue("(ni)", start + sent, errno); /* that datagram's error */
            }
            sent += done;
        }
        start += sent;
        if (stop_code != 0) return Py_BuildValue("(ni)", start, stop_code);
    }
    return Py_BuildValue("(ni)", start, 0);
}

/* ---------------------------------------------------------------- header parameters
 *
 * header_param(value, param) is message._python_header_param for a lower-case ASCII param:
 * the value of ;param= in a From, To or Via value, outside any <...>, blanks stripped;
 * None when it has none. Every request a UAS receives has its From tag read.
 */
static PyObject *header_param(PyObject *self, PyObject *args) {
    PyObject *value;
    const char *param;
    Py_ssize_t param_size, size;
    if (!PyArg_ParseTuple(args, "Us#:header_param", &value, &param, &param_size)) return NULL;
    const char *text = PyUnicode_AsUTF8AndSize(value, &size);
    if (text == NULL) return NULL;
    const char *end = text + size;
    /* as Python's value.find(">") when "<" is in value: the first '>' anywhere */
    const char *close = memchr(text, '<', (size_t)size) != NULL ? memchr(text, '>', (size_t)size) : NULL;
    const char *cursor;
    if (close != NULL) {
        cursor = close + 1; /* every ;-part after the name-addr is a parameter */
    } else {
        const char *first = memchr(text, ';', (size_t)size); /* the first part is the URI */
        if (first == NULL) Py_RETURN_NONE;
        cursor = first + 1;
    }
    for (;;) {
        const char *semicolon = memchr(cursor, ';', (size_t)(end - cursor));
        const char *part = cursor, *part_end = semicolon != NULL ? semicolon : end;
        strip_wsp(&part, &part_end);
        if (part_end - part > param_size && part[param_size] == '=' &&
            strncasecmp(part, param, (size_t)param_size) == 0) {
            const char *found = part + param_size + 1;
            strip_wsp(&found, &part_end);
            return PyUnicode_DecodeUTF8(found, part_end - found, NULL);
        }
        if (semicolon == NULL) Py_RETURN_NONE;
        cursor = semicolon + 1;
    }
}

static PyMethodDef methods[] = {
    {"header_param", header_param, METH_VARARGS,
     "header_param(value, param) -> str or None: the value of ;param= (param in lower case) in a "
     "From, To or Via value, outside any <...>."},
    {"peek_message", peek_message, METH_O,
     "peek_message(data) -> (is_request, method, status_code, cseq_method, to) or None: the facts "
     "kept about a message sent, after the checks parse_message makes; None: parse it whole"},
    {"index_headers", index_headers, METH_VARARGS,
     "index_headers(data, start, end) -> (headers, index) or None: the header lines of "
     "data[start:end] as (name, value) pairs and by canonical name; None when the Python "
     "version must decide."},
    {"parse_message", parse_message, METH_O,
     "parse_message(data) -> (first_line, index, body, is_request, call_id, status_code, method, "
     "cseq_method, section_start, section_end) or None: a well-formed message in one pass (its "
     "(name, value) pairs are index_headers(data, section_start, section_end) when asked for); "
     "None when the Python parser must decide (cseq_method None: Python works it out)."},
    {"recv_batch", recv_batch, METH_VARARGS,
     "recv_batch(fd, limit) -> [(data, (host, port)), ...]: the datagrams waiting on a "
     "non-blocking UDP socket, at most limit (<= 64) of them, in one recvmmsg."},
    {"send_batch", send_batch, METH_VARARGS,
     "send_batch(fd, queue, start) -> (next, code): sends queue[start:] ((data, (host, port)) "
     "pairs) with sendmmsg; code 0 when all went, an errno for the datagram at next, or -1 "
     "when its destination is not a numeric address."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sipcore", "Native SIP core: header indexing and batched UDP datagram I/O.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sipcore(void) {
    if (make_known_names() < 0) return NULL;
    return PyModule_Create(&module);
}
