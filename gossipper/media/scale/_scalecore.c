/* _scalecore: the CPython binding of the native scale engine (scalecore.h).
 *
 * All the engine's work is in scalecore.c; this file parses arguments, drops the
 * GIL around every engine call that may wait for a worker's lock, and turns the
 * engine's structs and errors into the objects and exceptions that
 * native_backend.py reads (typed in _scalecore.pyi).  It also exposes the
 * constants the engine shares with api.py, so that a test can check they agree.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <string.h>

#include "scalecore.h"

typedef struct {
    PyObject_HEAD
    struct sc_engine *engine;
    PyObject *mode;
    PyObject *mode_reason;
    int rt_priority;    /* SCHED_RR priority the workers run at; 0: normal scheduling */
    int private_tables; /* workers that send through a descriptor table of their own */
    PyObject *rt_error; /* why a requested priority was refused (errno name), else None */
} CoreObject;

/* ---- errors ------------------------------------------------------------- */

/* Raise what an engine call's -errno means: a ValueError saying why for a bad
 * argument, a RuntimeError `stopped` for a closed engine, else MemoryError or
 * OSError. */
static PyObject *raise_engine_error(int err, const char *why, const char *stopped) {
    if (err == -EINVAL && why[0]) {
        PyObject *message = PyUnicode_DecodeUTF8(why, (Py_ssize_t)strlen(why), "replace");
        if (message) {
            PyErr_SetObject(PyExc_ValueError, message);
            Py_DECREF(message);
        }
        return NULL;
    }
    if (err == -ESHUTDOWN && stopped) {
        PyErr_SetString(PyExc_RuntimeError, stopped);
        return NULL;
    }
    if (err == -ENOMEM)
        return PyErr_NoMemory();
    errno = -err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

static PyObject *unknown_handle(unsigned long long handle) {
    return PyErr_Format(PyExc_ValueError, "unknown or removed stream handle %llu", handle);
}

static int parse_handle(PyObject *arg, unsigned long long *handle) {
    *handle = PyLong_AsUnsignedLongLong(arg);
    if (!PyErr_Occurred())
        return 0;
    if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
        PyErr_Clear();
        unknown_handle(0);
    }
    return -1;
}

/* ---- lifecycle ---------------------------------------------------------- */

static void Core_dealloc(CoreObject *self) {
    if (self->engine)
        sc_engine_destroy(self->engine); /* joins the workers, which never need the GIL */
    Py_XDECREF(self->mode);
    Py_XDECREF(self->mode_reason);
    Py_XDECREF(self->rt_error);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Core_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"workers", "mode", NULL};
    int workers;
    const char *mode;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "is", kwlist, &workers, &mode))
        return NULL;
    char why[SC_WHY_BYTES] = "";
    struct sc_engine *engine;
    int err = sc_engine_create(workers, mode, &engine, why, sizeof why);
    if (err)
        return raise_engine_error(err, why, NULL);
    CoreObject *self = (CoreObject *)type->tp_alloc(type, 0);
    if (!self) {
        sc_engine_destroy(engine);
        return NULL;
    }
    self->engine = engine;
    struct sc_info info;
    sc_engine_info(engine, &info);
    self->mode = PyUnicode_FromString(info.mode);
    self->mode_reason = PyUnicode_FromString(info.mode_reason);
    self->rt_error = Py_NewRef(Py_None);
    if (!self->mode || !self->mode_reason) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *Core_start(CoreObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"rt_priority", NULL};
    int rt_priority = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|i", kwlist, &rt_priority))
        return NULL;
    char why[SC_WHY_BYTES] = "";
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = sc_engine_start(self->engine, rt_priority, why, sizeof why);
    Py_END_ALLOW_THREADS
    struct sc_info info;
    sc_engine_info(self->engine, &info);
    self->rt_priority = info.rt_priority;
    self->private_tables = info.private_tables;
    if (info.rt_error && self->rt_error == Py_None) {
        PyObject *name = PyUnicode_FromString(sc_errno_name(info.rt_error));
        if (!name)
            return NULL;
        Py_SETREF(self->rt_error, name);
    }
    if (err)
        return raise_engine_error(err, why, "scale core is stopped; it cannot start again");
    Py_RETURN_NONE;
}

static PyObject *Core_stop(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    Py_BEGIN_ALLOW_THREADS
    sc_engine_close(self->engine);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* ---- stream commands ---------------------------------------------------- */

static PyObject *Core_add(CoreObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fd",           "header",       "payload_len", "silence_byte", "ts_step",
                             "interval_ns",  "first_due_ns", "packet_limit", "clock_rate", NULL};
    struct sc_stream_params params;
    Py_buffer header;
    long long ts_step, interval_ns, first_due_ns, packet_limit, clock_rate = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iy*iiLLLL|$L", kwlist, &params.fd, &header,
                                     &params.payload_len, &params.silence_byte, &ts_step, &interval_ns,
                                     &first_due_ns, &packet_limit, &clock_rate))
        return NULL;
    if (clock_rate < 0 || clock_rate > 1000000000LL) {
        PyBuffer_Release(&header);
        return PyErr_Format(PyExc_ValueError, "clock_rate must be 0..1000000000 Hz, got %lld", clock_rate);
    }
    params.clock_rate = (uint32_t)clock_rate;
    params.header = header.buf;
    params.header_len = (size_t)header.len;
    params.ts_step = ts_step;
    params.interval_ns = interval_ns;
    params.first_due_ns = first_due_ns;
    params.packet_limit = packet_limit;
    char why[SC_WHY_BYTES] = "";
    uint64_t handle = 0;
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = sc_engine_add(self->engine, &params, &handle, why, sizeof why);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&header);
    if (err)
        return raise_engine_error(err, why, "scale core is stopped");
    return PyLong_FromUnsignedLongLong(handle);
}

static PyObject *run_command(CoreObject *self, PyObject *arg, int (*command)(struct sc_engine *, uint64_t)) {
    unsigned long long handle;
    if (parse_handle(arg, &handle))
        return NULL;
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = command(self->engine, handle);
    Py_END_ALLOW_THREADS
    if (err)
        return unknown_handle(handle);
    Py_RETURN_NONE;
}

static PyObject *Core_pause(CoreObject *self, PyObject *arg) { return run_command(self, arg, sc_engine_pause); }

static PyObject *Core_resume(CoreObject *self, PyObject *arg) { return run_command(self, arg, sc_engine_resume); }

static PyObject *sent_tuple(const struct sc_sent *sent) {
    return Py_BuildValue("(KKKK)", (unsigned long long)sent->packets, (unsigned long long)sent->octets,
                         (unsigned long long)sent->errors, (unsigned long long)sent->icmp_reports);
}

static PyObject *read_sent(CoreObject *self, PyObject *arg,
                           int (*read)(struct sc_engine *, uint64_t, struct sc_sent *)) {
    unsigned long long handle;
    if (parse_handle(arg, &handle))
        return NULL;
    struct sc_sent sent;
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = read(self->engine, handle, &sent);
    Py_END_ALLOW_THREADS
    if (err)
        return unknown_handle(handle);
    return sent_tuple(&sent);
}

static int remove_counts(struct sc_engine *engine, uint64_t handle, struct sc_sent *sent) {
    return sc_engine_remove(engine, handle, sent, NULL);
}

static PyObject *Core_remove(CoreObject *self, PyObject *arg) { return read_sent(self, arg, remove_counts); }

/* The tuple _scalecore.pyi names _Quality, in sc_quality's order. */
static PyObject *quality_tuple(const struct sc_quality *q) {
    return Py_BuildValue("(KkOKKLKKKKKKKKKKK)", (unsigned long long)q->handle, (unsigned long)q->ssrc,
                         q->echo ? Py_True : Py_False, (unsigned long long)q->received,
                         (unsigned long long)q->expected, (long long)q->lost, (unsigned long long)q->duplicates,
                         (unsigned long long)q->reordered, (unsigned long long)q->seq_jumps,
                         (unsigned long long)q->ssrc_changes, (unsigned long long)q->jitter_ns,
                         (unsigned long long)q->jitter_max_ns, (unsigned long long)q->rtt_count,
                         (unsigned long long)q->rtt_sum_ns, (unsigned long long)q->rtt_min_ns,
                         (unsigned long long)q->rtt_max_ns, (unsigned long long)q->rtt_unmatched);
}

static PyObject *Core_remove_with_quality(CoreObject *self, PyObject *arg) {
    unsigned long long handle;
    if (parse_handle(arg, &handle))
        return NULL;
    struct sc_sent sent;
    struct sc_quality quality;
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = sc_engine_remove(self->engine, handle, &sent, &quality);
    Py_END_ALLOW_THREADS
    if (err)
        return unknown_handle(handle);
    PyObject *counts = sent_tuple(&sent), *figures = quality_tuple(&quality), *pair = NULL;
    if (counts && figures)
        pair = PyTuple_Pack(2, counts, figures);
    Py_XDECREF(counts);
    Py_XDECREF(figures);
    return pair;
}

static PyObject *Core_stream_quality(CoreObject *self, PyObject *arg) {
    unsigned long long handle;
    if (parse_handle(arg, &handle))
        return NULL;
    struct sc_quality quality;
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = sc_engine_stream_quality(self->engine, handle, &quality);
    Py_END_ALLOW_THREADS
    if (err)
        return unknown_handle(handle);
    return quality_tuple(&quality);
}

/* Every live quality stream's figures: one pass of the engine into a buffer
 * sized from the last count, again if streams were added meanwhile. */
static PyObject *Core_quality_list(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    size_t room = 64, n = 0;
    struct sc_quality *out = NULL;
    for (;;) {
        struct sc_quality *grown = PyMem_RawRealloc(out, room * sizeof *out);
        if (!grown) {
            PyMem_RawFree(out);
            return PyErr_NoMemory();
        }
        out = grown;
        Py_BEGIN_ALLOW_THREADS
        n = sc_engine_quality_list(self->engine, out, room);
        Py_END_ALLOW_THREADS
        if (n <= room)
            break;
        room = n + n / 8 + 16;
    }
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *item = quality_tuple(&out[i]);
        if (!item)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    PyMem_RawFree(out);
    return list;
}

static PyObject *Core_stream_stats(CoreObject *self, PyObject *arg) {
    return read_sent(self, arg, sc_engine_stream_sent);
}

static PyObject *Core_stream_received(CoreObject *self, PyObject *arg) {
    unsigned long long handle;
    if (parse_handle(arg, &handle))
        return NULL;
    struct sc_received received;
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = sc_engine_stream_received(self->engine, handle, &received);
    Py_END_ALLOW_THREADS
    if (err)
        return unknown_handle(handle);
    return Py_BuildValue("(KK)", (unsigned long long)received.packets, (unsigned long long)received.octets);
}

/* ---- totals ------------------------------------------------------------- */

static int set_count(PyObject *dict, const char *key, unsigned long long value) {
    PyObject *number = PyLong_FromUnsignedLongLong(value);
    if (!number)
        return -1;
    int err = PyDict_SetItemString(dict, key, number);
    Py_DECREF(number);
    return err;
}

/* {errno: count} of a table of ERRNO_SLOTS counts, without the zeros. */
static PyObject *errors_dict(const uint64_t *table) {
    PyObject *errors = PyDict_New();
    for (int i = 0; errors && i < ERRNO_SLOTS; i++) {
        if (!table[i])
            continue;
        PyObject *key = PyLong_FromLong(i), *count = PyLong_FromUnsignedLongLong(table[i]);
        if (!key || !count || PyDict_SetItem(errors, key, count))
            Py_CLEAR(errors);
        Py_XDECREF(key);
        Py_XDECREF(count);
    }
    return errors;
}

static PyObject *Core_stats(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    struct sc_stats stats;
    Py_BEGIN_ALLOW_THREADS
    sc_engine_stats(self->engine, &stats);
    Py_END_ALLOW_THREADS
    PyObject *dict = PyDict_New();
    PyObject *errors = errors_dict(stats.errors), *icmp_reports = errors_dict(stats.icmp_reports);
    int failed = !dict || !errors || !icmp_reports || set_count(dict, "packets", stats.packets) ||
                 set_count(dict, "octets", stats.octets) || set_count(dict, "late_packets", stats.late_packets) ||
                 set_count(dict, "on_time_1ms", stats.on_time_1ms) ||
                 set_count(dict, "on_time_2ms", stats.on_time_2ms) ||
                 set_count(dict, "max_late_ns", stats.max_late_ns) || set_count(dict, "skipped", stats.skipped) ||
                 PyDict_SetItemString(dict, "errors", errors) ||
                 PyDict_SetItemString(dict, "icmp_reports", icmp_reports) || set_count(dict, "active", stats.active) ||
                 set_count(dict, "finished", stats.finished) || set_count(dict, "threads", stats.threads) ||
                 set_count(dict, "received_packets", stats.received_packets) ||
                 set_count(dict, "received_octets", stats.received_octets) ||
                 set_count(dict, "received_malformed", stats.received_malformed);
    Py_XDECREF(errors);
    Py_XDECREF(icmp_reports);
    if (failed)
        Py_CLEAR(dict);
    return dict;
}

/* ---- type and module ---------------------------------------------------- */

static PyMethodDef Core_methods[] = {
    {"start", (PyCFunction)(void (*)(void))Core_start, METH_VARARGS | METH_KEYWORDS, "start(rt_priority=0): start the workers; with a priority, run them SCHED_RR if allowed."},
    {"stop", (PyCFunction)Core_stop, METH_NOARGS, "Stop and join the workers (idempotent)."},
    {"add", (PyCFunction)(void (*)(void))Core_add, METH_VARARGS | METH_KEYWORDS,
     "add(fd, header, payload_len, silence_byte, ts_step, interval_ns, first_due_ns, packet_limit, *,"
     " clock_rate=0) -> handle; a clock_rate measures the stream's receive quality"},
    {"pause", (PyCFunction)Core_pause, METH_O, "Stop sending a stream until resume()."},
    {"resume", (PyCFunction)Core_resume, METH_O, "Send again from the next slot of the stream's grid."},
    {"remove", (PyCFunction)Core_remove, METH_O,
     "Stop a stream for good -> (packets, octets, errors, icmp_reports) sent; what it received stays in"
     " stats(). The socket is free on return."},
    {"remove_with_quality", (PyCFunction)Core_remove_with_quality, METH_O,
     "As remove(), -> ((packets, octets, errors, icmp_reports), quality tuple)."},
    {"stream_quality", (PyCFunction)Core_stream_quality, METH_O, "A live stream's receive quality tuple."},
    {"quality_list", (PyCFunction)Core_quality_list, METH_NOARGS,
     "The receive quality tuples of every live stream added with a clock_rate."},
    {"stream_stats", (PyCFunction)Core_stream_stats, METH_O,
     "(packets, octets, errors, icmp_reports) sent by a live stream."},
    {"stream_received", (PyCFunction)Core_stream_received, METH_O,
     "(packets, payload octets) of RTP counted so far on a live stream's socket."},
    {"stats", (PyCFunction)Core_stats, METH_NOARGS, "Totals of every stream, removed ones included."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Core_members[] = {
    {"mode", T_OBJECT_EX, offsetof(CoreObject, mode), READONLY, "'iouring' or 'send': what actually runs"},
    {"mode_reason", T_OBJECT_EX, offsetof(CoreObject, mode_reason), READONLY, "why this mode runs"},
    {"rt_priority", T_INT, offsetof(CoreObject, rt_priority), READONLY,
     "SCHED_RR priority of the workers after start(); 0: normal scheduling"},
    {"rt_error", T_OBJECT_EX, offsetof(CoreObject, rt_error), READONLY,
     "errno name of a refused start(rt_priority=...), else None"},
    {"private_tables", T_INT, offsetof(CoreObject, private_tables), READONLY,
     "workers sending through a descriptor table of their own (mode 'send', after start())"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gossipper.media.scale._scalecore.Core",
    .tp_doc = "Core(workers, mode): worker threads that send synthetic RTP streams on schedule"
               " and count the RTP that comes back to their sockets.",
    .tp_basicsize = sizeof(CoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Core_new,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_methods = Core_methods,
    .tp_members = Core_members,
};

static struct PyModuleDef scalecore_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_scalecore",
    .m_doc = "Native sender threads of the scale RTP engine.",
    .m_size = -1,
};

/* The constants api.py states too, by the same names. */
static const struct {
    const char *name;
    long long value;
} shared_constants[] = {
    {"NS_PER_MS", NS_PER_MS},     {"RTP_HEADER_BYTES", RTP_HEADER_BYTES}, {"RTP_VERSION", RTP_VERSION},
    {"MAX_WORKERS", MAX_WORKERS}, {"LATE_NS", LATE_NS},                   {"LATE_2MS_NS", LATE_2MS_NS},
    {"EARLY_NS", EARLY_NS},       {"MAX_EARLY_NS", MAX_EARLY_NS},
    {"MAX_DROPOUT", MAX_DROPOUT}, {"MAX_MISORDER", MAX_MISORDER},         {"DUP_WINDOW", DUP_WINDOW},
    {"SEND_RING", SEND_RING},
};

PyMODINIT_FUNC PyInit__scalecore(void) {
    if (PyType_Ready(&CoreType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&scalecore_module);
    if (!module)
        return NULL;
    for (size_t i = 0; i < sizeof shared_constants / sizeof shared_constants[0]; i++) {
        if (PyModule_AddIntConstant(module, shared_constants[i].name, (long)shared_constants[i].value) < 0) {
            Py_DECREF(module);
            return NULL;
        }
    }
    /* ICMP_REPORT_ERRNOS, as api.py has it too: the errnos sc_is_icmp_report() takes. */
    PyObject *codes = PyList_New(0), *icmp = NULL;
    for (int err = 1; codes && err < ERRNO_SLOTS; err++) {
        if (!sc_is_icmp_report(err))
            continue;
        PyObject *code = PyLong_FromLong(err);
        if (!code || PyList_Append(codes, code))
            Py_CLEAR(codes);
        Py_XDECREF(code);
    }
    if (codes)
        icmp = PyList_AsTuple(codes);
    Py_XDECREF(codes);
    if (!icmp || PyModule_AddObject(module, "ICMP_REPORT_ERRNOS", icmp) < 0) {
        Py_XDECREF(icmp);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(module, "Core", (PyObject *)&CoreType) < 0) {
        Py_DECREF(&CoreType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
