/* Transformer kernels for the native backend: layer norm, GELU and a float attention step.
 *
 * Each function works in place on the buffers of an op of edgesnn/engine/_transformer.py
 * (C-contiguous float32, int64 for the token count), so that one token of a small model
 * costs one C call per op instead of a dozen numpy calls. The numpy kernels in that module
 * are the reference; these sum in their own order (tests hold them within float32 rounding).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static int check(Py_buffer *b, Py_ssize_t n, Py_ssize_t itemsize, const char *name) {
    if (b->len != n * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd bytes, got %zd", name, n * itemsize, b->len);
        return -1;
    }
    return 0;
}

/* layer_norm(x, w, b, eps, out, d): out = (x - mean) / sqrt(var + eps) * w + b over rows of d. */
static PyObject *layer_norm(PyObject *self, PyObject *args) {
    Py_buffer x, w, b, out;
    double eps;
    Py_ssize_t d;
    if (!PyArg_ParseTuple(args, "y*y*y*dw*n", &x, &w, &b, &eps, &out, &d)) return NULL;
    PyObject *ret = NULL;
    Py_ssize_t rows = d > 0 ? x.len / (Py_ssize_t)sizeof(float) / d : 0;
    if (d <= 0 || check(&x, rows * d, 4, "x") || check(&w, d, 4, "w") || check(&b, d, 4, "b") ||
        check(&out, rows * d, 4, "out"))
        goto done;
    const float *xs = x.buf, *ws = w.buf, *bs = b.buf;
    float *os = out.buf;
    for (Py_ssize_t r = 0; r < rows; r++) {
        const float *xr = xs + r * d;
        float *orow = os + r * d;
        float mean = 0.f, var = 0.f;
        for (Py_ssize_t i = 0; i < d; i++) mean += xr[i];
        mean /= (float)d;
        for (Py_ssize_t i = 0; i < d; i++) {
            float c = xr[i] - mean;
            var += c * c;
        }
        var /= (float)d;
        float inv = 1.f / sqrtf(var + (float)eps);
        for (Py_ssize_t i = 0; i < d; i++) orow[i] = (xr[i] - mean) * inv * ws[i] + bs[i];
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&x);
    PyBuffer_Release(&w);
    PyBuffer_Release(&b);
    PyBuffer_Release(&out);
    return ret;
}

/* gelu(x, out): the tanh form, element-wise. */
static PyObject *gelu(PyObject *self, PyObject *args) {
    Py_buffer x, out;
    if (!PyArg_ParseTuple(args, "y*w*", &x, &out)) return NULL;
    PyObject *ret = NULL;
    Py_ssize_t n = x.len / (Py_ssize_t)sizeof(float);
    if (check(&out, n, 4, "out")) goto done;
    const float *xs = x.buf;
    float *os = out.buf;
    const float c = 0.7978845608028654f; /* sqrt(2 / pi) */
    for (Py_ssize_t i = 0; i < n; i++) {
        float v = xs[i];
        os[i] = 0.5f * v * (1.f + tanhf(c * (v + 0.044715f * v * v * v)));
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&x);
    PyBuffer_Release(&out);
    return ret;
}

/* attention(x, w_qkv_t, b_qkv, keys, values, count, w_out_t, b_out, out, batch, heads, window):
 * project q, k, v; write k, v into slot count mod window; softmax attention of q over the filled
 * slots, scores scaled by 1/sqrt(D); project the heads' outputs; count += 1. */
static PyObject *attention(PyObject *self, PyObject *args) {
    Py_buffer x, wq, bq, keys, values, count, wo, bo, out;
    Py_ssize_t batch, heads, window;
    if (!PyArg_ParseTuple(args, "y*y*y*w*w*w*y*y*w*nnn", &x, &wq, &bq, &keys, &values, &count, &wo, &bo, &out,
                          &batch, &heads, &window))
        return NULL;
    PyObject *ret = NULL;
    float *qkv = NULL, *y = NULL, *p = NULL;
    Py_ssize_t d = batch > 0 ? x.len / (Py_ssize_t)sizeof(float) / batch : 0;
    Py_ssize_t dh = heads > 0 ? d / heads : 0;
    if (batch <= 0 || heads <= 0 || window <= 0 || dh * heads != d || check(&x, batch * d, 4, "x") ||
        check(&wq, d * 3 * d, 4, "w_qkv_t") || check(&bq, 3 * d, 4, "b_qkv") ||
        check(&keys, batch * heads * window * dh, 4, "keys") ||
        check(&values, batch * heads * window * dh, 4, "values") || check(&count, 1, 8, "count") ||
        check(&wo, d * d, 4, "w_out_t") || check(&bo, d, 4, "b_out") || check(&out, batch * d, 4, "out"))
        goto done;
    qkv = PyMem_Malloc(sizeof(float) * 3 * d);
    y = PyMem_Malloc(sizeof(float) * d);
    p = PyMem_Malloc(sizeof(float) * window);
    if (!qkv || !y || !p) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *cnt = count.buf;
    Py_ssize_t slot = (Py_ssize_t)(*cnt % window);
    Py_ssize_t filled = *cnt + 1 < window ? (Py_ssize_t)(*cnt + 1) : window;
    const float scale = 1.f / sqrtf((float)dh);
    const float *wqs = wq.buf, *bqs = bq.buf, *wos = wo.buf, *bos = bo.buf;
    float *ks = keys.buf, *vs = values.buf, *os = out.buf;
    for (Py_ssize_t b = 0; b < batch; b++) {
        const float *xb = (const float *)x.buf + b * d;
        memcpy(qkv, bqs, sizeof(float) * 3 * d);
        for (Py_ssize_t i = 0; i < d; i++) {
            float xi = xb[i];
            const float *row = wqs + i * 3 * d;
            for (Py_ssize_t j = 0; j < 3 * d; j++) qkv[j] += xi * row[j];
        }
        for (Py_ssize_t h = 0; h < heads; h++) {
            float *kh = ks + ((b * heads + h) * window) * dh, *vh = vs + ((b * heads + h) * window) * dh;
            memcpy(kh + slot * dh, qkv + d + h * dh, sizeof(float) * dh);
            memcpy(vh + slot * dh, qkv + 2 * d + h * dh, sizeof(float) * dh);
            const float *q = qkv + h * dh;
            float top = -INFINITY, total = 0.f;
            for (Py_ssize_t s = 0; s < filled; s++) {
                float acc = 0.f;
                for (Py_ssize_t e = 0; e < dh; e++) acc += kh[s * dh + e] * q[e];
                p[s] = acc * scale;
                if (p[s] > top) top = p[s];
            }
            for (Py_ssize_t s = 0; s < filled; s++) {
                p[s] = expf(p[s] - top);
                total += p[s];
            }
            float *yh = y + h * dh;
            for (Py_ssize_t e = 0; e < dh; e++) yh[e] = 0.f;
            for (Py_ssize_t s = 0; s < filled; s++) {
                float ps = p[s] / total;
                for (Py_ssize_t e = 0; e < dh; e++) yh[e] += ps * vh[s * dh + e];
            }
        }
        float *ob = os + b * d;
        memcpy(ob, bos, sizeof(float) * d);
        for (Py_ssize_t i = 0; i < d; i++) {
            float yi = y[i];
            const float *row = wos + i * d;
            for (Py_ssize_t j = 0; j < d; j++) ob[j] += yi * row[j];
        }
    }
    *cnt += 1;
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyMem_Free(qkv);
    PyMem_Free(y);
    PyMem_Free(p);
    PyBuffer_Release(&x);
    PyBuffer_Release(&wq);
    PyBuffer_Release(&bq);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&values);
    PyBuffer_Release(&count);
    PyBuffer_Release(&wo);
    PyBuffer_Release(&bo);
    PyBuffer_Release(&out);
    return ret;
}

static PyMethodDef methods[] = {
    {"layer_norm", layer_norm, METH_VARARGS, "layer_norm(x, w, b, eps, out, d): layer norm over rows of d."},
    {"gelu", gelu, METH_VARARGS, "gelu(x, out): GELU, tanh form."},
    {"attention", attention, METH_VARARGS, "attention(...): one token of float sliding-window attention."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_tkernels", "Transformer kernels.", -1, methods};

PyMODINIT_FUNC PyInit__tkernels(void) { return PyModule_Create(&module); }
