/* lua_util.h: pure helpers for policy scripts (URI escaping, base64, SHA-256,
 * HMAC, hex, a fast hash for consistent hashing). */
#ifndef RP_LUA_UTIL_H
#define RP_LUA_UTIL_H

#include "rp.h"

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

/* With the rproxy table on top of the stack, adds escape_uri, unescape_uri,
 * base64_encode, base64_decode, sha256, sha256_hex, hmac_sha256, hex and
 * hash to it. Lua stack: unchanged; raises on memory errors. */
void rp_lua_util_open(lua_State *L);

/* MurmurHash3 x86_32 of s with seed, as rproxy.hash() computes it (same
 * values as the reference implementation and e.g. Python's mmh3.hash(s,
 * seed, signed=False)), for C code that must agree with scripts. */
uint32_t rp_lua_util_murmur3(const void *s, size_t len, uint32_t seed);

#endif
