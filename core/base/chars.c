/* The character class table (see chars.h), built by hand once. */
#include "base/chars.h"

#define T MH_CH_TCHAR
#define F MH_CH_FIELD
#define X MH_CH_HEX
#define U MH_CH_TARGET
#define H MH_CH_HOST
#define S MH_CH_SCHEME

const unsigned char mh_char_class[256] = {
    ['\t'] = F,
    [' '] = F,
    ['!'] = T | F | U | H,
    ['"'] = F | U,
    ['#'] = T | F | U,
    ['$'] = T | F | U | H,
    ['%'] = T | F | U | H,
    ['&'] = T | F | U | H,
    ['\''] = T | F | U | H,
    ['('] = F | U | H,
    [')'] = F | U | H,
    ['*'] = T | F | U | H,
    ['+'] = T | F | U | H | S,
    [','] = F | U | H,
    ['-'] = T | F | U | H | S,
    ['.'] = T | F | U | H | S,
    ['/'] = F | U,
    ['0'] = T | F | X | U | H | S,
    ['1'] = T | F | X | U | H | S,
    ['2'] = T | F | X | U | H | S,
    ['3'] = T | F | X | U | H | S,
    ['4'] = T | F | X | U | H | S,
    ['5'] = T | F | X | U | H | S,
    ['6'] = T | F | X | U | H | S,
    ['7'] = T | F | X | U | H | S,
    ['8'] = T | F | X | U | H | S,
    ['9'] = T | F | X | U | H | S,
    [':'] = F | U,
    [';'] = F | U | H,
    ['<'] = F | U,
    ['='] = F | U | H,
    ['>'] = F | U,
    ['?'] = F | U,
    ['@'] = F | U,
    ['A'] = T | F | X | U | H | S,
    ['B'] = T | F | X | U | H | S,
    ['C'] = T | F | X | U | H | S,
    ['D'] = T | F | X | U | H | S,
    ['E'] = T | F | X | U | H | S,
    ['F'] = T | F | X | U | H | S,
    ['G'] = T | F | U | H | S,
    ['H'] = T | F | U | H | S,
    ['I'] = T | F | U | H | S,
    ['J'] = T | F | U | H | S,
    ['K'] = T | F | U | H | S,
    ['L'] = T | F | U | H | S,
    ['M'] = T | F | U | H | S,
    ['N'] = T | F | U | H | S,
    ['O'] = T | F | U | H | S,
    ['P'] = T | F | U | H | S,
    ['Q'] = T | F | U | H | S,
    ['R'] = T | F | U | H | S,
    ['S'] = T | F | U | H | S,
    ['T'] = T | F | U | H | S,
    ['U'] = T | F | U | H | S,
    ['V'] = T | F | U | H | S,
    ['W'] = T | F | U | H | S,
    ['X'] = T | F | U | H | S,
    ['Y'] = T | F | U | H | S,
    ['Z'] = T | F | U | H | S,
    ['['] = F | U,
    ['\\'] = F | U,
    [']'] = F | U,
    ['^'] = T | F | U,
    ['_'] = T | F | U | H,
    ['`'] = T | F | U,
    ['a'] = T | F | X | U | H | S,
    ['b'] = T | F | X | U | H | S,
    ['c'] = T | F | X | U | H | S,
    ['d'] = T | F | X | U | H | S,
    ['e'] = T | F | X | U | H | S,
    ['f'] = T | F | X | U | H | S,
    ['g'] = T | F | U | H | S,
    ['h'] = T | F | U | H | S,
    ['i'] = T | F | U | H | S,
    ['j'] = T | F | U | H | S,
    ['k'] = T | F | U | H | S,
    ['l'] = T | F | U | H | S,
    ['m'] = T | F | U | H | S,
    ['n'] = T | F | U | H | S,
    ['o'] = T | F | U | H | S,
    ['p'] = T | F | U | H | S,
    ['q'] = T | F | U | H | S,
    ['r'] = T | F | U | H | S,
    ['s'] = T | F | U | H | S,
    ['t'] = T | F | U | H | S,
    ['u'] = T | F | U | H | S,
    ['v'] = T | F | U | H | S,
    ['w'] = T | F | U | H | S,
    ['x'] = T | F | U | H | S,
    ['y'] = T | F | U | H | S,
    ['z'] = T | F | U | H | S,
    ['{'] = F | U,
    ['|'] = T | F | U,
    ['}'] = F | U,
    ['~'] = T | F | U | H,
/* obs-text: allowed in field values */
#define OBS8(b)                                                                           \
    [(b)] = F, [(b) + 1] = F, [(b) + 2] = F, [(b) + 3] = F, [(b) + 4] = F, [(b) + 5] = F, \
    [(b) + 6] = F, [(b) + 7] = F
    OBS8(0x80),
    OBS8(0x88),
    OBS8(0x90),
    OBS8(0x98),
    OBS8(0xa0),
    OBS8(0xa8),
    OBS8(0xb0),
    OBS8(0xb8),
    OBS8(0xc0),
    OBS8(0xc8),
    OBS8(0xd0),
    OBS8(0xd8),
    OBS8(0xe0),
    OBS8(0xe8),
    OBS8(0xf0),
    OBS8(0xf8),
#undef OBS8
};

bool mh_is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        if (!mh_ch_is((unsigned char)*s, MH_CH_TCHAR))
            return false;
    }
    return true;
}

bool mh_is_field_value(const char *s)
{
    for (; *s; s++) {
        if (!mh_ch_is((unsigned char)*s, MH_CH_FIELD))
            return false;
    }
    return true;
}

int mh_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
