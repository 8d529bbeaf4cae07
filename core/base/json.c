/* The strict JSON syntax check (see json.h): a recursive-descent scanner that builds nothing. */
#include "base/json.h"

#include <string.h>

#include "base/utf8.h"

struct scan {
    const unsigned char *p, *end;
    int depth, max_depth;
    const char *why;
    enum mh_json_verdict verdict;
};

static bool fail(struct scan *sc, const char *why)
{
    if (sc->verdict == MH_JSON_VALID) {
        sc->verdict = MH_JSON_INVALID;
        sc->why = why;
    }
    return false;
}

static void skip_ws(struct scan *sc)
{
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r'))
        sc->p++;
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The escape after a backslash, at sc->p. */
static bool escape(struct scan *sc)
{
    unsigned char c;

    if (sc->p >= sc->end)
        return fail(sc, "unexpected end of input in a string");
    c = *sc->p;
    if (c == 'u') {
        if (sc->end - sc->p < 5 || !is_hex(sc->p[1]) || !is_hex(sc->p[2]) || !is_hex(sc->p[3]) ||
            !is_hex(sc->p[4]))
            return fail(sc, "\\u must be followed by four hex digits");
        sc->p += 5;
        return true;
    }
    if (c && strchr("\"\\/bfnrt", c)) {
        sc->p++;
        return true;
    }
    return fail(sc, "invalid escape in a string");
}

static bool string(struct scan *sc)
{
    const unsigned char *run;

    sc->p++; /* opening quote */
    run = sc->p;
    while (sc->p < sc->end) {
        unsigned char c = *sc->p;

        if (c == '"' || c == '\\') {
            /* A run of plain characters ends: it must be UTF-8 on its own. */
            if (!mh_utf8_valid(run, (size_t)(sc->p - run)))
                return fail(sc, "string is not valid UTF-8");
            sc->p++;
            if (c == '"')
                return true;
            if (!escape(sc))
                return false;
            run = sc->p;
            continue;
        }
        if (c < 0x20)
            return fail(sc, "control character in a string (escape it)");
        sc->p++;
    }
    return fail(sc, "unexpected end of input in a string");
}

static bool digits(struct scan *sc)
{
    const unsigned char *start = sc->p;

    while (sc->p < sc->end && *sc->p >= '0' && *sc->p <= '9')
        sc->p++;
    return sc->p > start;
}

static bool number(struct scan *sc)
{
    if (*sc->p == '-')
        sc->p++;
    if (sc->p < sc->end && *sc->p == '0') {
        sc->p++;
        if (sc->p < sc->end && *sc->p >= '0' && *sc->p <= '9')
            return fail(sc, "number with a leading zero");
    } else if (!digits(sc)) {
        return fail(sc, "invalid number");
    }
    if (sc->p < sc->end && *sc->p == '.') {
        sc->p++;
        if (!digits(sc))
            return fail(sc, "digits expected after the decimal point");
    }
    if (sc->p < sc->end && (*sc->p == 'e' || *sc->p == 'E')) {
        sc->p++;
        if (sc->p < sc->end && (*sc->p == '+' || *sc->p == '-'))
            sc->p++;
        if (!digits(sc))
            return fail(sc, "digits expected in the exponent");
    }
    return true;
}

static bool literal(struct scan *sc, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, word, n) != 0)
        return fail(sc, "unexpected character");
    sc->p += n;
    return true;
}

static bool value(struct scan *sc);

/* An object's key and the ':' after it. */
static bool object_key(struct scan *sc)
{
    if (sc->p >= sc->end)
        return fail(sc, "unexpected end of input");
    if (*sc->p != '"')
        return fail(sc, "object keys are strings");
    if (!string(sc))
        return false;
    skip_ws(sc);
    if (sc->p >= sc->end)
        return fail(sc, "unexpected end of input");
    if (*sc->p != ':')
        return fail(sc, "':' expected after an object key");
    sc->p++;
    return true;
}

static bool container(struct scan *sc, unsigned char close)
{
    if (++sc->depth > sc->max_depth) {
        sc->verdict = MH_JSON_TOO_DEEP;
        sc->why = "nesting too deep";
        return false;
    }
    sc->p++;
    skip_ws(sc);
    if (sc->p < sc->end && *sc->p == close) {
        sc->p++;
        sc->depth--;
        return true;
    }
    for (;;) {
        if (close == '}' && !object_key(sc))
            return false;
        if (!value(sc))
            return false;
        skip_ws(sc);
        if (sc->p < sc->end && *sc->p == ',') {
            sc->p++;
            skip_ws(sc);
            continue;
        }
        if (sc->p < sc->end && *sc->p == close) {
            sc->p++;
            sc->depth--;
            return true;
        }
        if (sc->p >= sc->end)
            return fail(sc, "unexpected end of input");
        return fail(sc, close == '}' ? "',' or '}' expected" : "',' or ']' expected");
    }
}

static bool value(struct scan *sc)
{
    skip_ws(sc);
    if (sc->p >= sc->end)
        return fail(sc, "unexpected end of input");
    switch (*sc->p) {
    case '{':
        return container(sc, '}');
    case '[':
        return container(sc, ']');
    case '"':
        return string(sc);
    case 't':
        return literal(sc, "true");
    case 'f':
        return literal(sc, "false");
    case 'n':
        return literal(sc, "null");
    default:
        if (*sc->p == '-' || (*sc->p >= '0' && *sc->p <= '9'))
            return number(sc);
        return fail(sc, "unexpected character");
    }
}

enum mh_json_verdict mh_json_check(const char *s, size_t len, int max_depth, size_t *offset,
                                   const char **why)
{
    struct scan sc = {(const unsigned char *)s,
                      (const unsigned char *)s + len,
                      0,
                      max_depth,
                      NULL,
                      MH_JSON_VALID};

    if (value(&sc)) {
        skip_ws(&sc);
        if (sc.p < sc.end)
            fail(&sc, "unexpected data after the value");
    }
    *offset = (size_t)(sc.p - (const unsigned char *)s);
    *why = sc.why;
    return sc.verdict;
}
