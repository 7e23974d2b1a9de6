/* A protobuf wire-format scanner for OTLP trace requests: what grouping needs per span,
 * read from the request's bytes without building a message.
 *
 * scan(data) walks a serialized ExportTraceServiceRequest (or TracesData: the same field 1)
 * and returns, per ResourceSpans, per ScopeSpans, per Span, the values ingest/grouping.py
 * needs (see native.py for the shapes). Attribute keys are not spelled here: configure()
 * gives the span attribute keys (slot, rank), the metadata key prefix, the resource
 * attribute keys and the event names, from grouping.py.
 *
 * The scanner answers only for requests it can read exactly as upb reads them and whose
 * parts are in *canonical* encoding (what upb's SerializeToString writes): every field known
 * to the schema below (the installed opentelemetry-proto's, checked by native.py) with its
 * wire type, fields in ascending number order (a repeated field's elements together),
 * proto3 zero values left out, at most one member of a oneof, minimal varints, in-range
 * int32 / uint32 / bool values, strict UTF-8 in string fields, at most MAX_DEPTH nested
 * messages (upb allows 100). Then a span's bytes as received equal upb's serialization of
 * the parsed span, and likewise the resource and scope bytes. For anything else
 * (malformed, truncated, unknown fields, another encoder's field order...) scan() returns
 * a short reason string instead, and the caller takes the reference path: upb parses the
 * request (raising DecodeError when it is malformed) and the pure-Python walk groups it.
 *
 * Every read is bounds-checked against the end of the enclosing field; recursion is bounded
 * by MAX_DEPTH.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 64     /* nested messages from the request down (upb refuses above 100) */
#define MAX_SLOTS 32
#define MAX_EVENT_NAMES 8
#define MAX_FIELD 16

/* ---- the schema: OTLP trace messages, field number -> kind, label, message type -------- */

enum Kind { K_NONE, K_MSG, K_STRING, K_BYTES, K_INT32, K_UINT32, K_INT64, K_BOOL, K_DOUBLE, K_FIXED64,
            K_FIXED32, K_COUNT };
enum Label { L_IMPLICIT, L_PRESENCE, L_REPEATED, L_ONEOF };
enum Msg { M_REQUEST, M_RESOURCE_SPANS, M_RESOURCE, M_KEY_VALUE, M_ANY_VALUE, M_ARRAY_VALUE, M_KEY_VALUE_LIST,
           M_ENTITY_REF, M_SCOPE_SPANS, M_SCOPE, M_SPAN, M_EVENT, M_LINK, M_STATUS, M_COUNT };

typedef struct { uint8_t kind, label, type; } Field;

static const char *const MSG_NAMES[M_COUNT] = {
    "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
    "opentelemetry.proto.trace.v1.ResourceSpans",
    "opentelemetry.proto.resource.v1.Resource",
    "opentelemetry.proto.common.v1.KeyValue",
    "opentelemetry.proto.common.v1.AnyValue",
    "opentelemetry.proto.common.v1.ArrayValue",
    "opentelemetry.proto.common.v1.KeyValueList",
    "opentelemetry.proto.common.v1.EntityRef",
    "opentelemetry.proto.trace.v1.ScopeSpans",
    "opentelemetry.proto.common.v1.InstrumentationScope",
    "opentelemetry.proto.trace.v1.Span",
    "opentelemetry.proto.trace.v1.Span.Event",
    "opentelemetry.proto.trace.v1.Span.Link",
    "opentelemetry.proto.trace.v1.Status",
};
static const char *const KIND_NAMES[K_COUNT] = {
    "none", "message", "string", "bytes", "int32", "uint32", "int64", "bool", "double", "fixed64", "fixed32"};
static const char *const LABEL_NAMES[] = {"implicit", "presence", "repeated", "oneof"};
static const uint8_t WIRE[K_COUNT] = {
    [K_MSG] = 2, [K_STRING] = 2, [K_BYTES] = 2, [K_INT32] = 0, [K_UINT32] = 0, [K_INT64] = 0, [K_BOOL] = 0,
    [K_DOUBLE] = 1, [K_FIXED64] = 1, [K_FIXED32] = 5};

#define F(kind, label, type) {kind, label, type}
#define MSG(type) F(K_MSG, L_PRESENCE, type)
#define REP(type) F(K_MSG, L_REPEATED, type)
#define S(kind) F(kind, L_IMPLICIT, 0)
static const Field SCHEMA[M_COUNT][MAX_FIELD + 1] = {
    [M_REQUEST] = {[1] = REP(M_RESOURCE_SPANS)},
    [M_RESOURCE_SPANS] = {[1] = MSG(M_RESOURCE), [2] = REP(M_SCOPE_SPANS), [3] = S(K_STRING)},
    [M_RESOURCE] = {[1] = REP(M_KEY_VALUE), [2] = S(K_UINT32), [3] = REP(M_ENTITY_REF)},
    [M_KEY_VALUE] = {[1] = S(K_STRING), [2] = MSG(M_ANY_VALUE), [3] = S(K_INT32)},
    [M_ANY_VALUE] = {[1] = F(K_STRING, L_ONEOF, 0), [2] = F(K_BOOL, L_ONEOF, 0), [3] = F(K_INT64, L_ONEOF, 0),
                     [4] = F(K_DOUBLE, L_ONEOF, 0), [5] = F(K_MSG, L_ONEOF, M_ARRAY_VALUE),
                     [6] = F(K_MSG, L_ONEOF, M_KEY_VALUE_LIST), [7] = F(K_BYTES, L_ONEOF, 0),
                     [8] = F(K_INT32, L_ONEOF, 0)},
    [M_ARRAY_VALUE] = {[1] = REP(M_ANY_VALUE)},
    [M_KEY_VALUE_LIST] = {[1] = REP(M_KEY_VALUE)},
    [M_ENTITY_REF] = {[1] = S(K_STRING), [2] = S(K_STRING), [3] = F(K_STRING, L_REPEATED, 0),
                      [4] = F(K_STRING, L_REPEATED, 0)},
    [M_SCOPE_SPANS] = {[1] = MSG(M_SCOPE), [2] = REP(M_SPAN), [3] = S(K_STRING)},
    [M_SCOPE] = {[1] = S(K_STRING), [2] = S(K_STRING), [3] = REP(M_KEY_VALUE), [4] = S(K_UINT32)},
    [M_SPAN] = {[1] = S(K_BYTES), [2] = S(K_BYTES), [3] = S(K_STRING), [4] = S(K_BYTES), [5] = S(K_STRING),
                [6] = S(K_INT32), [7] = S(K_FIXED64), [8] = S(K_FIXED64), [9] = REP(M_KEY_VALUE),
                [10] = S(K_UINT32), [11] = REP(M_EVENT), [12] = S(K_UINT32), [13] = REP(M_LINK),
                [14] = S(K_UINT32), [15] = MSG(M_STATUS), [16] = S(K_FIXED32)},
    [M_EVENT] = {[1] = S(K_FIXED64), [2] = S(K_STRING), [3] = REP(M_KEY_VALUE), [4] = S(K_UINT32)},
    [M_LINK] = {[1] = S(K_BYTES), [2] = S(K_BYTES), [3] = S(K_STRING), [4] = REP(M_KEY_VALUE),
                [5] = S(K_UINT32), [6] = S(K_FIXED32)},
    [M_STATUS] = {[2] = S(K_STRING), [3] = S(K_INT32)},
};

/* ---- configuration: attribute keys from grouping.py ----------------------------------- */

typedef struct {
    char *key;
    Py_ssize_t len;
    uint64_t hash;
    int slot, rank, next; /* next: another entry with the same key, or -1 */
} Entry;

#define BUCKETS 256 /* a power of two, well above the number of keys */

typedef struct {
    Entry *entries;
    int n;
    int nslots;
    uint32_t last_wins;   /* bit per slot: a later attribute of equal rank wins */
    uint64_t lengths;     /* bit per key length below 64 (a quick miss) */
    int long_keys;        /* any key of 64 bytes or more */
    int buckets[BUCKETS]; /* first entry of a key, or -1 */
} KeyTable;

static KeyTable span_keys, resource_keys;
static char *metadata_prefix;
static Py_ssize_t metadata_prefix_len;
static char *event_names[MAX_EVENT_NAMES];
static Py_ssize_t event_name_lens[MAX_EVENT_NAMES];
static int n_event_names;
static PyObject *other_value; /* the value of an attribute that is not a str, int, float or bool */
static int configured;

/* A hash of a key from its length and its first and last 8 bytes (collisions only cost a
 * comparison more). */
static uint64_t key_hash(const uint8_t *s, Py_ssize_t n)
{
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ULL;
    if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        h ^= a * 0xFF51AFD7ED558CCDULL;
        h = (h ^ (h >> 29) ^ b) * 0xC4CEB9FE1A85EC53ULL;
    } else {
        for (Py_ssize_t i = 0; i < n; i++)
            h = (h ^ s[i]) * 0x100000001B3ULL;
    }
    return h ^ (h >> 32);
}

static const Entry *table_find(const KeyTable *t, const uint8_t *key, Py_ssize_t len)
{
    if (len < 64 ? !(t->lengths & ((uint64_t)1 << len)) : !t->long_keys)
        return NULL;
    uint64_t h = key_hash(key, len);
    for (unsigned i = (unsigned)h & (BUCKETS - 1);; i = (i + 1) & (BUCKETS - 1)) {
        int at = t->buckets[i];
        if (at < 0)
            return NULL;
        const Entry *e = &t->entries[at];
        if (e->hash == h && e->len == len && memcmp(e->key, key, (size_t)len) == 0)
            return e;
    }
}

static void table_clear(KeyTable *t)
{
    if (t->entries) {
        for (int i = 0; i < t->n; i++)
            PyMem_Free(t->entries[i].key);
        PyMem_Free(t->entries);
    }
    memset(t, 0, sizeof(*t));
    for (int i = 0; i < BUCKETS; i++)
        t->buckets[i] = -1;
}

/* Copy of a str's UTF-8 bytes (PyMem), or NULL with an exception set. */
static char *utf8_copy(PyObject *text, Py_ssize_t *len)
{
    const char *s = PyUnicode_AsUTF8AndSize(text, len);
    if (s == NULL)
        return NULL;
    char *copy = PyMem_Malloc((size_t)*len + 1);
    if (copy == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(copy, s, (size_t)*len + 1);
    return copy;
}

/* Fill ``t`` from a sequence of (key: str, slot: int, rank: int). */
static int table_fill(KeyTable *t, PyObject *keys, int nslots, PyObject *last_wins)
{
    table_clear(t);
    if (nslots < 0 || nslots > MAX_SLOTS) {
        PyErr_Format(PyExc_ValueError, "at most %d slots", MAX_SLOTS);
        return -1;
    }
    t->nslots = nslots;
    PyObject *seq = PySequence_Fast(keys, "keys must be a sequence of (key, slot, rank)");
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > BUCKETS / 2) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "too many keys");
        return -1;
    }
    t->entries = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Entry));
    if (t->entries == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key;
        int slot, rank;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "Uii", &key, &slot, &rank))
            goto fail;
        if (slot < 0 || slot >= nslots || rank < 0 || rank > 1000) {
            PyErr_SetString(PyExc_ValueError, "slot or rank out of range");
            goto fail;
        }
        Entry *e = &t->entries[i];
        if ((e->key = utf8_copy(key, &e->len)) == NULL)
            goto fail;
        t->n = (int)i + 1;
        e->hash = key_hash((const uint8_t *)e->key, e->len);
        e->slot = slot;
        e->rank = rank;
        e->next = -1;
        if (e->len < 64)
            t->lengths |= (uint64_t)1 << e->len;
        else
            t->long_keys = 1;
        for (unsigned b = (unsigned)e->hash & (BUCKETS - 1);; b = (b + 1) & (BUCKETS - 1)) {
            int at = t->buckets[b];
            if (at < 0) {
                t->buckets[b] = (int)i;
                break;
            }
            Entry *head = &t->entries[at];
            if (head->hash == e->hash && head->len == e->len && memcmp(head->key, e->key, (size_t)e->len) == 0) {
                while (head->next >= 0)
                    head = &t->entries[head->next];
                head->next = (int)i;
                break;
            }
        }
    }
    Py_DECREF(seq);
    if (last_wins != NULL) {
        PyObject *it = PyObject_GetIter(last_wins);
        if (it == NULL)
            return -1;
        PyObject *item;
        while ((item = PyIter_Next(it)) != NULL) {
            long slot = PyLong_AsLong(item);
            Py_DECREF(item);
            if (slot < 0 || slot >= nslots) {
                Py_DECREF(it);
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "last_wins slot out of range");
                return -1;
            }
            t->last_wins |= (uint32_t)1 << slot;
        }
        Py_DECREF(it);
        if (PyErr_Occurred())
            return -1;
    }
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

/* ---- reading the wire format ----------------------------------------------------------- */

typedef struct {
    const char *why; /* why the request goes to the reference path; NULL with a Python error */
    uint8_t trace_id[16], selector[2]; /* the last span digest's trace id and its first bytes */
    int has_selector;
} Ctx;

static int give_up(Ctx *c, const char *why)
{
    c->why = why;
    return -1;
}

/* A minimal varint of at most 64 bits. */
static inline int read_varint(Ctx *c, const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) { /* one byte: tags, lengths and small values */
        *out = *p;
        *pp = p + 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (p >= end)
            return give_up(c, "truncated varint");
        uint8_t b = *p++;
        if (i == 9 && b > 1)
            return give_up(c, "varint over 64 bits");
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (i > 0 && b == 0)
                return give_up(c, "varint not minimal");
            *pp = p;
            *out = v;
            return 0;
        }
    }
    return give_up(c, "varint over 10 bytes");
}

static inline uint64_t load64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

/* Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). */
static int utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ULL)) {
                i += 8;
                continue;
            }
        }
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
        } else if (b >= 0xC2 && b <= 0xDF) {
            if (n - i < 2 || (s[i + 1] & 0xC0) != 0x80)
                return 0;
            i += 2;
        } else if (b >= 0xE0 && b <= 0xEF) {
            if (n - i < 3 || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80)
                return 0;
            if ((b == 0xE0 && s[i + 1] < 0xA0) || (b == 0xED && s[i + 1] > 0x9F))
                return 0;
            i += 3;
        } else if (b >= 0xF0 && b <= 0xF4) {
            if (n - i < 4 || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80)
                return 0;
            if ((b == 0xF0 && s[i + 1] < 0x90) || (b == 0xF4 && s[i + 1] > 0x8F))
                return 0;
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

/* One field read from a message. */
typedef struct {
    int number;
    const Field *f;
    const uint8_t *data; /* length-delimited: the payload */
    size_t len;
    uint64_t value; /* varint, fixed64 or fixed32 */
} Item;

/* Where a message's reading is: last field number, oneof member seen. */
typedef struct {
    int last;
    int oneof;
} Order;

/* Read one field of a message of ``type`` at *pp and check it (see the header); the payload
 * of a message field is not walked (the caller does). */
static int next_item(Ctx *c, int type, const uint8_t **pp, const uint8_t *end, Order *o, Item *it)
{
    uint64_t tag;
    if (read_varint(c, pp, end, &tag))
        return -1;
    uint64_t number = tag >> 3;
    unsigned wire = (unsigned)(tag & 7);
    if (number == 0 || number > MAX_FIELD || SCHEMA[type][number].kind == K_NONE)
        return give_up(c, "field not in the schema");
    const Field *f = &SCHEMA[type][number];
    if (wire != WIRE[f->kind])
        return give_up(c, "unexpected wire type");
    if ((int)number < o->last || ((int)number == o->last && f->label != L_REPEATED))
        return give_up(c, "fields out of canonical order");
    if (f->label == L_ONEOF) {
        if (o->oneof)
            return give_up(c, "two members of a oneof");
        o->oneof = 1;
    }
    o->last = (int)number;
    it->number = (int)number;
    it->f = f;
    const uint8_t *p = *pp;
    int implicit = f->label == L_IMPLICIT;
    switch (wire) {
    case 0: {
        uint64_t v;
        if (read_varint(c, &p, end, &v))
            return -1;
        if (f->kind == K_INT32 && v != (uint64_t)(int64_t)(int32_t)(uint32_t)v)
            return give_up(c, "int32 out of range");
        if (f->kind == K_UINT32 && v > 0xFFFFFFFFULL)
            return give_up(c, "uint32 out of range");
        if (f->kind == K_BOOL && v > 1)
            return give_up(c, "bool neither 0 nor 1");
        if (implicit && v == 0)
            return give_up(c, "zero value written");
        it->value = v;
        break;
    }
    case 1:
        if (end - p < 8)
            return give_up(c, "truncated fixed64");
        it->value = load64(p);
        p += 8;
        if (implicit && it->value == 0)
            return give_up(c, "zero value written");
        break;
    case 5:
        if (end - p < 4)
            return give_up(c, "truncated fixed32");
        it->value = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
        p += 4;
        if (implicit && it->value == 0)
            return give_up(c, "zero value written");
        break;
    default: { /* 2: length-delimited */
        uint64_t len;
        if (read_varint(c, &p, end, &len))
            return -1;
        if (len > (uint64_t)(end - p))
            return give_up(c, "length past the end");
        it->data = p;
        it->len = (size_t)len;
        p += len;
        if (implicit && len == 0)
            return give_up(c, "empty value written");
        if (f->kind == K_STRING && !utf8_valid(it->data, it->len))
            return give_up(c, "string not UTF-8");
        break;
    }
    }
    *pp = p;
    return 0;
}

/* Check a whole message of ``type`` (and everything in it). */
static int walk(Ctx *c, int type, const uint8_t *p, const uint8_t *end, int depth)
{
    if (depth > MAX_DEPTH)
        return give_up(c, "nested too deep");
    Order o = {0, 0};
    Item it;
    while (p < end) {
        if (next_item(c, type, &p, end, &o, &it))
            return -1;
        if (it.f->kind == K_MSG && walk(c, it.f->type, it.data, it.data + it.len, depth + 1))
            return -1;
    }
    return 0;
}

/* ---- values ------------------------------------------------------------------------------ */

/* The winning attribute value per slot: the AnyValue's bytes (checked, canonical). */
typedef struct {
    int rank[MAX_SLOTS];
    const uint8_t *value[MAX_SLOTS]; /* NULL: the KeyValue had no value */
    size_t len[MAX_SLOTS];
    uint32_t present;
} Slots;

static void slots_reset(Slots *s, int n)
{
    s->present = 0;
    for (int i = 0; i < n; i++)
        s->rank[i] = 1 << 30;
}

/* An AnyValue (checked, canonical: at most one field) as str, int, float or bool, else the
 * configured other value. */
static PyObject *any_value(const uint8_t *p, size_t len)
{
    if (p == NULL || len == 0)
        return Py_NewRef(other_value);
    const uint8_t *end = p + len;
    uint8_t tag = *p++;
    uint64_t v = 0;
    Ctx c;
    switch (tag) {
    case 0x0a: /* 1: string_value */
        if (read_varint(&c, &p, end, &v))
            break;
        return PyUnicode_DecodeUTF8((const char *)p, (Py_ssize_t)v, NULL);
    case 0x10: /* 2: bool_value */
        if (read_varint(&c, &p, end, &v))
            break;
        return PyBool_FromLong(v != 0);
    case 0x18: /* 3: int_value */
        if (read_varint(&c, &p, end, &v))
            break;
        return PyLong_FromLongLong((long long)(int64_t)v);
    case 0x21: { /* 4: double_value */
        if (end - p < 8)
            break;
        uint64_t bits = load64(p);
        double d;
        memcpy(&d, &bits, 8);
        return PyFloat_FromDouble(d);
    }
    default:
        break;
    }
    return Py_NewRef(other_value);
}

static PyObject *utf8_str(const uint8_t *p, size_t len)
{
    return PyUnicode_DecodeUTF8((const char *)p, (Py_ssize_t)len, NULL);
}

/* A KeyValue: checked; a key of ``table`` competes for its slots; a key under the metadata
 * prefix (``metadata`` not NULL) is added to *metadata (created on first use). */
static int walk_key_value(Ctx *c, const uint8_t *p, const uint8_t *end, int depth, const KeyTable *table,
                          Slots *slots, PyObject **metadata)
{
    if (depth > MAX_DEPTH)
        return give_up(c, "nested too deep");
    Order o = {0, 0};
    Item it;
    const uint8_t *key = (const uint8_t *)"", *value = NULL;
    size_t key_len = 0, value_len = 0;
    while (p < end) {
        if (next_item(c, M_KEY_VALUE, &p, end, &o, &it))
            return -1;
        if (it.number == 1) {
            key = it.data;
            key_len = it.len;
        } else if (it.number == 2) {
            if (walk(c, M_ANY_VALUE, it.data, it.data + it.len, depth + 1))
                return -1;
            value = it.data;
            value_len = it.len;
        }
    }
    const Entry *e = table_find(table, key, (Py_ssize_t)key_len);
    if (e != NULL) {
        for (; e != NULL; e = e->next >= 0 ? &table->entries[e->next] : NULL) {
            int slot = e->slot;
            if (e->rank < slots->rank[slot] || (e->rank == slots->rank[slot] && (table->last_wins >> slot & 1))) {
                slots->rank[slot] = e->rank;
                slots->value[slot] = value;
                slots->len[slot] = value_len;
                slots->present |= (uint32_t)1 << slot;
            }
        }
    } else if (metadata != NULL && (Py_ssize_t)key_len >= metadata_prefix_len &&
               memcmp(key, metadata_prefix, (size_t)metadata_prefix_len) == 0) {
        if (*metadata == NULL && (*metadata = PyDict_New()) == NULL)
            return give_up(c, NULL);
        PyObject *name = utf8_str(key + metadata_prefix_len, key_len - (size_t)metadata_prefix_len);
        PyObject *typed = name ? any_value(value, value_len) : NULL;
        int failed = typed == NULL || PyDict_SetItem(*metadata, name, typed) < 0;
        Py_XDECREF(name);
        Py_XDECREF(typed);
        if (failed)
            return give_up(c, NULL);
    }
    return 0;
}

/* The winners of ``slots`` as a tuple of ``n`` (None where no attribute named the slot). */
static PyObject *slot_tuple(const Slots *s, int n)
{
    PyObject *t = PyTuple_New(n);
    if (t == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *v = (s->present >> i & 1) ? any_value(s->value[i], s->len[i]) : Py_NewRef(Py_None);
        if (v == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

/* ---- span digests: groups.span_digest, in C ---------------------------------------------- */

/* BLAKE2b (RFC 7693) of at most 128 bytes, ``outlen`` bytes out, no key, a 16-byte
 * personalization (zero-padded, as hashlib's ``person``) or none. */
static const uint64_t B2_IV[8] = {
    0x6A09E667F3BCC908ULL, 0xBB67AE8584CAA73BULL, 0x3C6EF372FE94F82BULL, 0xA54FF53A5F1D36F1ULL,
    0x510E527FADE682D1ULL, 0x9B05688C2B3E6C1FULL, 0x1F83D9ABFB41BD6BULL, 0x5BE0CD19137E2179ULL};
static const uint8_t B2_SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};

#define ROTR64(x, n) (((x) >> (n)) | ((x) << (64 - (n))))
#define B2_G(a, b, c, d, x, y)                                                                               \
    do {                                                                                                     \
        a = a + b + (x);                                                                                     \
        d = ROTR64(d ^ a, 32);                                                                               \
        c = c + d;                                                                                           \
        b = ROTR64(b ^ c, 24);                                                                               \
        a = a + b + (y);                                                                                     \
        d = ROTR64(d ^ a, 16);                                                                               \
        c = c + d;                                                                                           \
        b = ROTR64(b ^ c, 63);                                                                               \
    } while (0)

static void blake2b_short(const uint8_t *in, size_t len, const char *person, size_t outlen, uint8_t *out)
{
    uint8_t block[128] = {0}, param[16] = {0};
    uint64_t h[8], v[16], m[16];
    memcpy(block, in, len); /* len <= 128 */
    for (int i = 0; i < 8; i++)
        h[i] = B2_IV[i];
    h[0] ^= 0x01010000ULL ^ (uint64_t)outlen;
    if (person != NULL) {
        memcpy(param, person, strlen(person)); /* at most 16 */
        h[6] ^= load64(param);
        h[7] ^= load64(param + 8);
    }
    for (int i = 0; i < 16; i++)
        m[i] = load64(block + 8 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = B2_IV[i];
    }
    v[12] ^= (uint64_t)len; /* bytes compressed, one final block */
    v[14] = ~v[14];
    for (int r = 0; r < 12; r++) {
        const uint8_t *s = B2_SIGMA[r];
        B2_G(v[0], v[4], v[8], v[12], m[s[0]], m[s[1]]);
        B2_G(v[1], v[5], v[9], v[13], m[s[2]], m[s[3]]);
        B2_G(v[2], v[6], v[10], v[14], m[s[4]], m[s[5]]);
        B2_G(v[3], v[7], v[11], v[15], m[s[6]], m[s[7]]);
        B2_G(v[0], v[5], v[10], v[15], m[s[8]], m[s[9]]);
        B2_G(v[1], v[6], v[11], v[12], m[s[10]], m[s[11]]);
        B2_G(v[2], v[7], v[8], v[13], m[s[12]], m[s[13]]);
        B2_G(v[3], v[4], v[9], v[14], m[s[14]], m[s[15]]);
    }
    for (size_t i = 0; i < outlen; i++)
        out[i] = (uint8_t)((h[i / 8] ^ v[i / 8] ^ v[i / 8 + 8]) >> (8 * (i % 8)));
}

/* groups.span_digest(trace_id, span_id) of a 16-byte trace id and an 8-byte span id: 2
 * bytes of BLAKE2b(trace id, person "bucket"), then 6 bytes of BLAKE2b(trace id + span id).
 * ``c`` (or NULL) keeps the last trace's first two bytes: a trace's spans mostly come together. */
static PyObject *span_digest(Ctx *c, const uint8_t *trace_id, const uint8_t *span_id)
{
    uint8_t ids[24], digest[8];
    memcpy(ids, trace_id, 16);
    memcpy(ids + 16, span_id, 8);
    if (c != NULL && c->has_selector && memcmp(c->trace_id, trace_id, 16) == 0) {
        memcpy(digest, c->selector, 2);
    } else {
        blake2b_short(trace_id, 16, "bucket", 2, digest);
        if (c != NULL) {
            memcpy(c->trace_id, trace_id, 16);
            memcpy(c->selector, digest, 2);
            c->has_selector = 1;
        }
    }
    blake2b_short(ids, 24, NULL, 6, digest + 2);
    return PyBytes_FromStringAndSize((const char *)digest, 8);
}

static PyObject *digest_py(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer trace_id, span_id;
    if (!PyArg_ParseTuple(args, "y*y*", &trace_id, &span_id))
        return NULL;
    PyObject *out = NULL;
    if (trace_id.len != 16 || span_id.len != 8)
        PyErr_SetString(PyExc_ValueError, "a 16-byte trace id and an 8-byte span id");
    else
        out = span_digest(NULL, trace_id.buf, span_id.buf);
    PyBuffer_Release(&trace_id);
    PyBuffer_Release(&span_id);
    return out;
}

/* ---- spans ------------------------------------------------------------------------------- */

static int walk_event(Ctx *c, const uint8_t *p, const uint8_t *end, int depth, long *events)
{
    if (depth > MAX_DEPTH)
        return give_up(c, "nested too deep");
    Order o = {0, 0};
    Item it;
    while (p < end) {
        if (next_item(c, M_EVENT, &p, end, &o, &it))
            return -1;
        if (it.number == 2) {
            for (int i = 0; i < n_event_names; i++)
                if ((Py_ssize_t)it.len == event_name_lens[i] && memcmp(it.data, event_names[i], it.len) == 0)
                    *events |= 1L << i;
        } else if (it.f->kind == K_MSG && walk(c, it.f->type, it.data, it.data + it.len, depth + 1)) {
            return -1;
        }
    }
    return 0;
}

static int walk_status(Ctx *c, const uint8_t *p, const uint8_t *end, long *code)
{
    Order o = {0, 0};
    Item it;
    while (p < end) {
        if (next_item(c, M_STATUS, &p, end, &o, &it))
            return -1;
        if (it.number == 3)
            *code = (long)(int32_t)(uint32_t)it.value;
    }
    return 0;
}

/* A Span as the tuple (body, trace_id, span_id, name, root, start_ns, end_ns, status code,
 * event bits, slots, metadata dict or None, kind, digest or None), or NULL. */
static PyObject *walk_span(Ctx *c, const uint8_t *start, const uint8_t *end, int depth)
{
    if (depth > MAX_DEPTH) {
        give_up(c, "nested too deep");
        return NULL;
    }
    const uint8_t *p = start;
    Order o = {0, 0};
    Item it;
    const uint8_t *trace_id = NULL, *span_id = NULL, *name = NULL, *parent = NULL;
    size_t trace_len = 0, span_len = 0, name_len = 0, parent_len = 0;
    long kind = 0, status = 0, events = 0;
    uint64_t start_ns = 0, end_ns = 0;
    Slots slots;
    PyObject *metadata = NULL;
    slots_reset(&slots, span_keys.nslots);
    while (p < end) {
        if (next_item(c, M_SPAN, &p, end, &o, &it))
            goto fail;
        switch (it.number) {
        case 1: trace_id = it.data; trace_len = it.len; break;
        case 2: span_id = it.data; span_len = it.len; break;
        case 4: parent = it.data; parent_len = it.len; break;
        case 5: name = it.data; name_len = it.len; break;
        case 6: kind = (long)(int32_t)(uint32_t)it.value; break;
        case 7: start_ns = it.value; break;
        case 8: end_ns = it.value; break;
        case 9:
            if (walk_key_value(c, it.data, it.data + it.len, depth + 1, &span_keys, &slots,
                               metadata_prefix ? &metadata : NULL))
                goto fail;
            break;
        case 11:
            if (walk_event(c, it.data, it.data + it.len, depth + 1, &events))
                goto fail;
            break;
        case 15:
            if (walk_status(c, it.data, it.data + it.len, &status))
                goto fail;
            break;
        default:
            if (it.f->kind == K_MSG && walk(c, it.f->type, it.data, it.data + it.len, depth + 1))
                goto fail;
        }
    }
    int root = parent_len == 0;
    if (parent_len == 8) {
        root = 1;
        for (int i = 0; i < 8; i++)
            root &= parent[i] == 0;
    }
    PyObject *t = PyTuple_New(13);
    if (t == NULL)
        goto error;
    PyTuple_SET_ITEM(t, 0, PyBytes_FromStringAndSize((const char *)start, end - start));
    PyTuple_SET_ITEM(t, 1, PyBytes_FromStringAndSize((const char *)trace_id, (Py_ssize_t)trace_len));
    PyTuple_SET_ITEM(t, 2, PyBytes_FromStringAndSize((const char *)span_id, (Py_ssize_t)span_len));
    PyTuple_SET_ITEM(t, 3, name ? utf8_str(name, name_len) : PyUnicode_New(0, 0));
    PyTuple_SET_ITEM(t, 4, PyBool_FromLong(root));
    PyTuple_SET_ITEM(t, 5, PyLong_FromUnsignedLongLong(start_ns));
    PyTuple_SET_ITEM(t, 6, PyLong_FromUnsignedLongLong(end_ns));
    PyTuple_SET_ITEM(t, 7, PyLong_FromLong(status));
    PyTuple_SET_ITEM(t, 8, PyLong_FromLong(events));
    PyTuple_SET_ITEM(t, 9, slot_tuple(&slots, span_keys.nslots));
    PyTuple_SET_ITEM(t, 10, metadata ? metadata : Py_NewRef(Py_None));
    metadata = NULL;
    PyTuple_SET_ITEM(t, 11, PyLong_FromLong(kind));
    PyTuple_SET_ITEM(t, 12, trace_len == 16 && span_len == 8 ? span_digest(c, trace_id, span_id) : Py_NewRef(Py_None));
    for (int i = 0; i < 13; i++) {
        if (PyTuple_GET_ITEM(t, i) == NULL) {
            Py_DECREF(t);
            goto error;
        }
    }
    return t;
error:
    c->why = NULL;
fail:
    Py_XDECREF(metadata);
    return NULL;
}

/* ---- resources and scopes ---------------------------------------------------------------- */

/* A ScopeSpans as (scope bytes, schema_url, [span tuples]), or NULL. */
static PyObject *walk_scope_spans(Ctx *c, const uint8_t *p, const uint8_t *end, int depth)
{
    if (depth > MAX_DEPTH) {
        give_up(c, "nested too deep");
        return NULL;
    }
    Order o = {0, 0};
    Item it;
    const uint8_t *scope = (const uint8_t *)"", *schema = (const uint8_t *)"";
    size_t scope_len = 0, schema_len = 0;
    PyObject *spans = PyList_New(0);
    if (spans == NULL)
        goto error;
    while (p < end) {
        if (next_item(c, M_SCOPE_SPANS, &p, end, &o, &it))
            goto fail;
        if (it.number == 1) {
            if (walk(c, M_SCOPE, it.data, it.data + it.len, depth + 1))
                goto fail;
            scope = it.data;
            scope_len = it.len;
        } else if (it.number == 2) {
            PyObject *span = walk_span(c, it.data, it.data + it.len, depth + 1);
            if (span == NULL)
                goto fail;
            int failed = PyList_Append(spans, span);
            Py_DECREF(span);
            if (failed)
                goto error;
        } else {
            schema = it.data;
            schema_len = it.len;
        }
    }
    PyObject *scope_bytes = PyBytes_FromStringAndSize((const char *)scope, (Py_ssize_t)scope_len);
    PyObject *schema_str = scope_bytes ? utf8_str(schema, schema_len) : NULL;
    PyObject *t = schema_str ? PyTuple_Pack(3, scope_bytes, schema_str, spans) : NULL;
    Py_XDECREF(scope_bytes);
    Py_XDECREF(schema_str);
    Py_DECREF(spans);
    if (t == NULL)
        c->why = NULL;
    return t;
error:
    c->why = NULL;
fail:
    Py_XDECREF(spans);
    return NULL;
}

/* A ResourceSpans as (resource bytes, schema_url, resource slots, [scope tuples]), or NULL. */
static PyObject *walk_resource_spans(Ctx *c, const uint8_t *p, const uint8_t *end, int depth)
{
    if (depth > MAX_DEPTH) {
        give_up(c, "nested too deep");
        return NULL;
    }
    Order o = {0, 0};
    Item it;
    const uint8_t *resource = (const uint8_t *)"", *schema = (const uint8_t *)"";
    size_t resource_len = 0, schema_len = 0;
    Slots slots;
    slots_reset(&slots, resource_keys.nslots);
    PyObject *scopes = PyList_New(0);
    if (scopes == NULL)
        goto error;
    while (p < end) {
        if (next_item(c, M_RESOURCE_SPANS, &p, end, &o, &it))
            goto fail;
        if (it.number == 1) {
            resource = it.data;
            resource_len = it.len;
            const uint8_t *q = it.data, *q_end = it.data + it.len;
            Order ro = {0, 0};
            Item ri;
            while (q < q_end) {
                if (next_item(c, M_RESOURCE, &q, q_end, &ro, &ri))
                    goto fail;
                if (ri.number == 1) {
                    if (walk_key_value(c, ri.data, ri.data + ri.len, depth + 2, &resource_keys, &slots, NULL))
                        goto fail;
                } else if (ri.f->kind == K_MSG && walk(c, ri.f->type, ri.data, ri.data + ri.len, depth + 2)) {
                    goto fail;
                }
            }
        } else if (it.number == 2) {
            PyObject *scope = walk_scope_spans(c, it.data, it.data + it.len, depth + 1);
            if (scope == NULL)
                goto fail;
            int failed = PyList_Append(scopes, scope);
            Py_DECREF(scope);
            if (failed)
                goto error;
        } else {
            schema = it.data;
            schema_len = it.len;
        }
    }
    PyObject *resource_bytes = PyBytes_FromStringAndSize((const char *)resource, (Py_ssize_t)resource_len);
    PyObject *schema_str = resource_bytes ? utf8_str(schema, schema_len) : NULL;
    PyObject *values = schema_str ? slot_tuple(&slots, resource_keys.nslots) : NULL;
    PyObject *t = values ? PyTuple_Pack(4, resource_bytes, schema_str, values, scopes) : NULL;
    Py_XDECREF(resource_bytes);
    Py_XDECREF(schema_str);
    Py_XDECREF(values);
    Py_DECREF(scopes);
    if (t == NULL)
        c->why = NULL;
    return t;
error:
    c->why = NULL;
fail:
    Py_XDECREF(scopes);
    return NULL;
}

/* ---- the module -------------------------------------------------------------------------- */

PyDoc_STRVAR(scan_doc,
"scan(data) -> list | str\n\n"
"Read a serialized ExportTraceServiceRequest (or TracesData). Returns a list of\n"
"(resource bytes, schema_url, resource slot values, [(scope bytes, schema_url, [span])]),\n"
"each span being (body, trace_id, span_id, name, root, start_ns, end_ns, status code,\n"
"event bits, slot values, metadata dict or None, kind, digest: groups.span_digest or None\n"
"unless the ids are 16 and 8 bytes); or a short reason (str) when the\n"
"request is not in canonical encoding or not well formed: then parse it with upb.");

static PyObject *scan(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "_scan.configure() was not called");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const uint8_t *p = view.buf, *end = p + view.len;
    Ctx c;
    c.why = NULL;
    c.has_selector = 0;
    Order o = {0, 0};
    Item it;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        goto error;
    while (p < end) {
        if (next_item(&c, M_REQUEST, &p, end, &o, &it))
            goto fail;
        PyObject *rs = walk_resource_spans(&c, it.data, it.data + it.len, 1);
        if (rs == NULL)
            goto fail;
        int failed = PyList_Append(out, rs);
        Py_DECREF(rs);
        if (failed)
            goto error;
    }
    PyBuffer_Release(&view);
    return out;
fail:
    if (c.why == NULL)
        goto error;
    Py_XDECREF(out);
    PyBuffer_Release(&view);
    return PyUnicode_FromString(c.why);
error:
    Py_XDECREF(out);
    PyBuffer_Release(&view);
    return NULL;
}

PyDoc_STRVAR(configure_doc,
"configure(span_keys, span_slots, last_wins, metadata_prefix, resource_keys, resource_slots,\n"
"          event_names, other)\n\n"
"span_keys / resource_keys: sequences of (attribute key, slot, rank): per slot the lowest\n"
"rank wins, the first of equal rank (the last for a slot in last_wins); metadata_prefix:\n"
"span attribute keys under it (and no slot's) are returned by suffix (None: none); event_names:\n"
"bit i of a span's event bits says an event has name i; other: the value of an attribute\n"
"that is not a str, int, float or bool.");

static PyObject *configure(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *keys, *last_wins, *prefix, *rkeys, *names, *other;
    int nslots, rslots;
    if (!PyArg_ParseTuple(args, "OiOOOiOO", &keys, &nslots, &last_wins, &prefix, &rkeys, &rslots, &names, &other))
        return NULL;
    configured = 0;
    if (table_fill(&span_keys, keys, nslots, last_wins) < 0 || table_fill(&resource_keys, rkeys, rslots, NULL) < 0)
        return NULL;
    PyMem_Free(metadata_prefix);
    metadata_prefix = NULL;
    metadata_prefix_len = 0;
    if (prefix != Py_None) {
        if (!PyUnicode_Check(prefix)) {
            PyErr_SetString(PyExc_TypeError, "metadata_prefix must be a str or None");
            return NULL;
        }
        if ((metadata_prefix = utf8_copy(prefix, &metadata_prefix_len)) == NULL)
            return NULL;
    }
    for (int i = 0; i < n_event_names; i++)
        PyMem_Free(event_names[i]);
    n_event_names = 0;
    PyObject *seq = PySequence_Fast(names, "event_names must be a sequence of str");
    if (seq == NULL)
        return NULL;
    if (PySequence_Fast_GET_SIZE(seq) > MAX_EVENT_NAMES) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "at most %d event names", MAX_EVENT_NAMES);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *name = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyUnicode_Check(name)) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_TypeError, "event names must be str");
            return NULL;
        }
        if ((event_names[i] = utf8_copy(name, &event_name_lens[i])) == NULL) {
            Py_DECREF(seq);
            return NULL;
        }
        n_event_names = (int)i + 1;
    }
    Py_DECREF(seq);
    Py_XSETREF(other_value, Py_NewRef(other));
    configured = 1;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(schema_doc,
"schema() -> dict\n\n"
"The messages this scanner reads: full name -> {field number: (kind, label, message type or\n"
"None)}, to compare with the installed opentelemetry-proto's descriptors.");

static PyObject *schema(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    for (int m = 0; m < M_COUNT; m++) {
        PyObject *fields = PyDict_New();
        if (fields == NULL || PyDict_SetItemString(out, MSG_NAMES[m], fields) < 0)
            goto fail_fields;
        for (int n = 1; n <= MAX_FIELD; n++) {
            const Field *f = &SCHEMA[m][n];
            if (f->kind == K_NONE)
                continue;
            PyObject *entry = Py_BuildValue("(ssz)", KIND_NAMES[f->kind], LABEL_NAMES[f->label],
                                            f->kind == K_MSG ? MSG_NAMES[f->type] : NULL);
            PyObject *number = PyLong_FromLong(n);
            int failed = entry == NULL || number == NULL || PyDict_SetItem(fields, number, entry) < 0;
            Py_XDECREF(entry);
            Py_XDECREF(number);
            if (failed)
                goto fail_fields;
        }
        Py_DECREF(fields);
        continue;
    fail_fields:
        Py_XDECREF(fields);
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O, scan_doc},
    {"configure", configure, METH_VARARGS, configure_doc},
    {"schema", schema, METH_NOARGS, schema_doc},
    {"span_digest", digest_py, METH_VARARGS, "span_digest(trace_id, span_id) -> bytes: groups.span_digest."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan",
    "Native OTLP span scanner for grouping (see ingest/native.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scan(void)
{
    table_clear(&span_keys);
    table_clear(&resource_keys);
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "MAX_DEPTH", MAX_DEPTH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
