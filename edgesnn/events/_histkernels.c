/*
 * Native time-binned event counting: the kernel behind to_time_bins for EVENT_DTYPE input.
 *
 * numpy counts one bin at a time with bincount into int64, clips, casts and copies into the
 * output, five passes over every (bin, channel, pixel) cell; this walks the events once and adds
 * into the zeroed output in place, so the cost follows the number of events, not the sensor size.
 * The result is the numpy path's exactly: the bin of an event is (t - start) * T // D in int64
 * (events outside [start, start + D) are skipped), its cell (channel * H + y) * W + x with
 * channel 1 for p > 0 when there are two, and a count stops growing at the cutoff. Counts are
 * whole numbers below 2^24 (the caller checks), exact in float32.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__)
#error "EVENT_DTYPE records are little-endian; big-endian hosts take the numpy path"
#endif

/* EVENT_DTYPE: x u16 at 0, y u16 at 2, p i8 at 4, t i64 at 5; 13 bytes, packed. */
#define REC 13

PyDoc_STRVAR(time_bins_doc,
             "time_bins(events, out, is_float, t_start, span, n_bins, width, height, n_channels, cutoff, sorted)\n\n"
             "Count every event of ``events`` (EVENT_DTYPE bytes) with t_start <= t < t_start + span into\n"
             "``out`` ((n_bins, n_channels, height, width) float32 or int32 buffer, is_float saying which,\n"
             "cleared here), a count never passing ``cutoff`` (0: no cutoff). ``sorted``: the events'\n"
             "times never decrease. Coordinates must be inside the sensor (the caller checks).");

static PyObject *py_time_bins(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer ev, out;
    int is_float, n_channels, sorted;
    long long t_start, span, n_bins, width, height, cutoff;
    if (!PyArg_ParseTuple(args, "y*w*iLLLLLiLp", &ev, &out, &is_float, &t_start, &span, &n_bins, &width, &height,
                          &n_channels, &cutoff, &sorted))
        return NULL;
    PyObject *result = NULL;
    const int64_t cells = (int64_t)n_channels * height * width;
    if (span <= 0 || n_bins <= 0 || width <= 0 || height <= 0 || (n_channels != 1 && n_channels != 2) ||
        ev.len % REC != 0 || out.len != (Py_ssize_t)(n_bins * cells * 4)) {
        PyErr_SetString(PyExc_ValueError, "time_bins: inconsistent sizes");
        goto cleanup;
    }
    const uint8_t *e = (const uint8_t *)ev.buf;
    const Py_ssize_t n = ev.len / REC;
    const int64_t plane = (int64_t)height * width;
    uint8_t *o8 = (uint8_t *)out.buf;
    const size_t bin_bytes = (size_t)cells * 4;
    int64_t zeroed = sorted ? 0 : n_bins; /* bins [0, zeroed) are cleared */
    Py_BEGIN_ALLOW_THREADS;
    if (!sorted) memset(o8, 0, (size_t)n_bins * bin_bytes);
    for (Py_ssize_t k = 0; k < n; k++, e += REC) {
        uint16_t x, y;
        int8_t p;
        int64_t t;
        memcpy(&x, e, 2);
        memcpy(&y, e + 2, 2);
        memcpy(&p, e + 4, 1);
        memcpy(&t, e + 5, 8);
        const int64_t dt = t - (int64_t)t_start;
        if (dt < 0 || dt >= span) continue;
        const int64_t bin = dt * n_bins / span;
        /* Sorted input reaches the bins in order: clear each just before its first count, so its
         * counts land in cache (clearing all bins first left them in memory, 2x slower). */
        if (bin >= zeroed) {
            memset(o8 + (size_t)zeroed * bin_bytes, 0, (size_t)(bin + 1 - zeroed) * bin_bytes);
            zeroed = bin + 1;
        }
        const int64_t cell = bin * cells + (n_channels == 2 && p > 0 ? plane : 0) + (int64_t)y * width + x;
        if (is_float) {
            float *o = (float *)out.buf + cell;
            if (cutoff == 0 || *o < (float)cutoff) *o += 1.0f;
        } else {
            int32_t *o = (int32_t *)out.buf + cell;
            if (cutoff == 0 || *o < cutoff) *o += 1;
        }
    }
    if (zeroed < n_bins) memset(o8 + (size_t)zeroed * bin_bytes, 0, (size_t)(n_bins - zeroed) * bin_bytes);
    Py_END_ALLOW_THREADS;
    result = Py_None;
    Py_INCREF(result);
cleanup:
    PyBuffer_Release(&ev);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"time_bins", py_time_bins, METH_VARARGS, time_bins_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_histkernels", "Native time-binned event counting (see _histkernels.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__histkernels(void) { return PyModule_Create(&module); }
