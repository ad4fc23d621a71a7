/* lua_util.c: pure helpers for policy scripts: rproxy.escape_uri/unescape_uri,
 * base64, sha256, hmac_sha256, hex and hash. Results are built in luaL_Buffers
 * or on the C stack, so a memory error never leaks. */
#include "lua_util.h"

#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define UTIL_SHA256_LEN 32

static const char  util_hexdigits[] = "0123456789abcdef";

/* RFC 3986 section 2.3: ALPHA / DIGIT / "-" / "." / "_" / "~" */
static int
util_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~';
}

static int
util_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* rproxy.escape_uri(s) -> s with every byte but the unreserved ones as %XX
 * (upper-case hex, RFC 3986 section 2.1) */
static int
l_util_escape_uri(lua_State *L)
{
    static const char   upper[] = "0123456789ABCDEF";
    const unsigned char *s;
    size_t               len, i;
    luaL_Buffer          b;
    char                *p;

    s = (const unsigned char *) luaL_checklstring(L, 1, &len);
    luaL_buffinit(L, &b);
    for (i = 0; i < len; i++) {
        if (util_unreserved(s[i])) {
            luaL_addchar(&b, (char) s[i]);
        } else {
            p = luaL_prepbuffsize(&b, 3);
            p[0] = '%';
            p[1] = upper[s[i] >> 4];
            p[2] = upper[s[i] & 15];
            luaL_addsize(&b, 3);
        }
    }
    luaL_pushresult(&b);
    return 1;
}

/* rproxy.unescape_uri(s) -> s with each %XX decoded; a "%" not followed by
 * two hex digits is kept as is, and "+" stays "+" (it means a space only in
 * form bodies, not in URIs) */
static int
l_util_unescape_uri(lua_State *L)
{
    const unsigned char *s;
    size_t               len, i;
    luaL_Buffer          b;
    int                  hi, lo;

    s = (const unsigned char *) luaL_checklstring(L, 1, &len);
    luaL_buffinit(L, &b);
    for (i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len
            && (hi = util_hexval(s[i + 1])) >= 0 && (lo = util_hexval(s[i + 2])) >= 0) {
            luaL_addchar(&b, (char) (hi << 4 | lo));
            i += 2;
        } else {
            luaL_addchar(&b, (char) s[i]);
        }
    }
    luaL_pushresult(&b);
    return 1;
}

/* rproxy.base64_encode(s) -> standard alphabet, padded, no line breaks
 * (RFC 4648 section 4) */
static int
l_util_base64_encode(lua_State *L)
{
    const char  *s;
    size_t       len, olen;
    luaL_Buffer  b;
    char        *p;
    int          n;

    s = luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len <= (size_t) 0x7fffffff / 4 * 3 - 3, 1, "string too long");
    olen = (len + 2) / 3 * 4;
    p = luaL_buffinitsize(L, &b, olen + 1);              /* EVP_EncodeBlock adds a NUL */
    n = EVP_EncodeBlock((unsigned char *) p, (const unsigned char *) s, (int) len);
    luaL_pushresultsize(&b, (size_t) n);
    return 1;
}

/* rproxy.base64_decode(s) -> bytes | nil, "invalid base64"
 * Standard alphabet (RFC 4648 section 4); padding optional but, if present,
 * correct; no whitespace. Hand-written: EVP_DecodeBlock ignores padding
 * when it reports the length, and accepts surrounding whitespace. */
static int
l_util_base64_decode(lua_State *L)
{
    const unsigned char *s;
    size_t               len, i, n;
    luaL_Buffer          b;
    unsigned char       *p;
    uint32_t             acc = 0;
    unsigned             bits = 0;
    int                  v;

    s = (const unsigned char *) luaL_checklstring(L, 1, &len);
    n = len;
    if (len % 4 == 0 && len > 0 && s[len - 1] == '=') {
        n = len - (s[len - 2] == '=' ? 2 : 1);
    }
    if (n % 4 == 1) {
        goto invalid;
    }
    p = (unsigned char *) luaL_buffinitsize(L, &b, n / 4 * 3 + 2);
    for (i = 0; i < n; i++) {
        unsigned char  c = s[i];

        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';
        } else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;
        } else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;
        } else if (c == '+') {
            v = 62;
        } else if (c == '/') {
            v = 63;
        } else {
            goto invalid;                                /* the buffer is Lua's */
        }
        acc = acc << 6 | (uint32_t) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *p++ = (unsigned char) (acc >> bits);
        }
    }
    luaL_pushresultsize(&b, n * 6 / 8);
    return 1;

invalid:
    luaL_pushfail(L);
    lua_pushliteral(L, "invalid base64");
    return 2;
}

static void
util_sha256(lua_State *L, const char *s, size_t len, unsigned char *md)
{
    unsigned int  mdlen = 0;

    if (!EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != UTIL_SHA256_LEN) {
        luaL_error(L, "sha256: OpenSSL failed");
    }
}

static void
util_pushhex(lua_State *L, const unsigned char *s, size_t len)
{
    luaL_Buffer  b;
    char        *p;
    size_t       i;

    luaL_argcheck(L, len <= ((size_t) -1) / 2, 1, "string too long");
    p = luaL_buffinitsize(L, &b, len * 2);
    for (i = 0; i < len; i++) {
        p[2 * i] = util_hexdigits[s[i] >> 4];
        p[2 * i + 1] = util_hexdigits[s[i] & 15];
    }
    luaL_pushresultsize(&b, len * 2);
}

/* rproxy.sha256(s) -> 32 raw bytes */
static int
l_util_sha256(lua_State *L)
{
    unsigned char  md[UTIL_SHA256_LEN];
    const char    *s;
    size_t         len;

    s = luaL_checklstring(L, 1, &len);
    util_sha256(L, s, len, md);
    lua_pushlstring(L, (const char *) md, sizeof(md));
    return 1;
}

/* rproxy.sha256_hex(s) -> 64 lower-case hex digits */
static int
l_util_sha256_hex(lua_State *L)
{
    unsigned char  md[UTIL_SHA256_LEN];
    const char    *s;
    size_t         len;

    s = luaL_checklstring(L, 1, &len);
    util_sha256(L, s, len, md);
    util_pushhex(L, md, sizeof(md));
    return 1;
}

/* rproxy.hmac_sha256(key, msg) -> 32 raw bytes (RFC 2104) */
static int
l_util_hmac_sha256(lua_State *L)
{
    unsigned char  md[EVP_MAX_MD_SIZE];
    unsigned int   mdlen = 0;
    const char    *key, *msg;
    size_t         klen, mlen;

    key = luaL_checklstring(L, 1, &klen);
    msg = luaL_checklstring(L, 2, &mlen);
    luaL_argcheck(L, klen <= 0x7fffffff, 1, "key too long");

    if (HMAC(EVP_sha256(), key, (int) klen, (const unsigned char *) msg, mlen, md, &mdlen)
            == NULL
        || mdlen != UTIL_SHA256_LEN) {
        return luaL_error(L, "hmac_sha256: OpenSSL failed");
    }
    lua_pushlstring(L, (const char *) md, mdlen);
    return 1;
}

/* rproxy.hex(s) -> lower-case hex digits, two per byte */
static int
l_util_hex(lua_State *L)
{
    const char  *s;
    size_t       len;

    s = luaL_checklstring(L, 1, &len);
    util_pushhex(L, (const unsigned char *) s, len);
    return 1;
}

static uint32_t
util_rotl32(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

uint32_t
rp_lua_util_murmur3(const void *s, size_t len, uint32_t seed)
{
    const unsigned char  *p = s;
    const uint32_t        c1 = 0xcc9e2d51, c2 = 0x1b873593;
    uint32_t              h = seed, k;
    size_t                i, nblocks = len / 4;

    for (i = 0; i < nblocks; i++) {
        k = (uint32_t) p[4 * i] | (uint32_t) p[4 * i + 1] << 8 | (uint32_t) p[4 * i + 2] << 16
            | (uint32_t) p[4 * i + 3] << 24;
        k *= c1;
        k = util_rotl32(k, 15);
        k *= c2;
        h ^= k;
        h = util_rotl32(h, 13);
        h = h * 5 + 0xe6546b64;
    }
    p += nblocks * 4;
    k = 0;
    switch (len & 3) {
    case 3:
        k ^= (uint32_t) p[2] << 16;
        /* fall through */
    case 2:
        k ^= (uint32_t) p[1] << 8;
        /* fall through */
    case 1:
        k ^= p[0];
        k *= c1;
        k = util_rotl32(k, 15);
        k *= c2;
        h ^= k;
    }
    h ^= (uint32_t) len;
    h ^= h >> 16;
    h *= 0x85ebca6b;
    h ^= h >> 13;
    h *= 0xc2b2ae35;
    h ^= h >> 16;
    return h;
}

/* rproxy.hash(s [, seed]) -> 0 .. 2^32-1: MurmurHash3 x86_32 (seed default
 * 0), stable across workers, processes and hosts: for consistent hashing,
 * not for security (use hmac_sha256 where keys come from adversaries). */
static int
l_util_hash(lua_State *L)
{
    const char   *s;
    size_t        len;
    lua_Integer   seed;

    s = luaL_checklstring(L, 1, &len);
    seed = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, seed >= 0 && seed <= 0xffffffff, 2, "seed must be in 0 .. 2^32-1");

    lua_pushinteger(L, (lua_Integer) rp_lua_util_murmur3(s, len, (uint32_t) seed));
    return 1;
}

void
rp_lua_util_open(lua_State *L)
{
    static const luaL_Reg  fns[] = {
        { "escape_uri", l_util_escape_uri },
        { "unescape_uri", l_util_unescape_uri },
        { "base64_encode", l_util_base64_encode },
        { "base64_decode", l_util_base64_decode },
        { "sha256", l_util_sha256 },
        { "sha256_hex", l_util_sha256_hex },
        { "hmac_sha256", l_util_hmac_sha256 },
        { "hex", l_util_hex },
        { "hash", l_util_hash },
        { NULL, NULL },
    };

    luaL_setfuncs(L, fns, 0);                            /* stack: rproxy */
}
