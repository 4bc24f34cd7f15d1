/* marshal.h -- copy Lua values and functions between lua_States as bytes.
 *
 * The thread pool gives every worker its own lua_State. A value crosses from
 * one state to another as bytes: the sending thread encodes it from its own
 * state, the receiving thread decodes it into its own state, and no state is
 * ever touched by a thread that does not own it. See marshal.c for the byte
 * format.
 */
#ifndef TIDE_MARSHAL_H
#define TIDE_MARSHAL_H

#include <stddef.h>
#include <lua.h>

/* Tables nested deeper than this are refused by the encoder and rejected by
 * the decoder. */
#define TIDE_MARSHAL_MAXDEPTH 200

/* A growable byte buffer. It owns `data` (plain malloc, so any thread may
 * free it). Zero-initialised is the same as tide_mbuf_init. */
typedef struct tide_mbuf {
  char *data;   /* read-only: the bytes, or NULL while cap == 0 */
  size_t len;   /* read-only: bytes in use */
  size_t cap;   /* private: bytes allocated */
} tide_mbuf;

void tide_mbuf_init(tide_mbuf *b);
void tide_mbuf_free(tide_mbuf *b);
/* Appends n bytes. Returns 0, or -1 when memory runs out (b is unchanged). */
int tide_mbuf_append(tide_mbuf *b, const void *p, size_t n);

/* Encodes the n values at stack indices first .. first+n-1 of L and appends
 * them to out. Identity is kept across all n values: a table reachable twice
 * (even from two different values) decodes to one table. Does not change
 * L's stack. Returns 0, or -1 with a message in err (truncated to errlen,
 * always NUL-terminated when errlen > 0) and out->len as it was, e.g.
 *   argument 2: function at [3]["cb"] cannot be sent to another thread */
int tide_marshal_encode(lua_State *L, int first, int n, tide_mbuf *out,
                        char *err, size_t errlen);

/* Like tide_marshal_encode, but a refusal calls the values "LABEL N" with
 * N counted from `number` (tide_marshal_encode uses "argument", 1), e.g.
 *   result 1: function cannot be sent to another thread */
int tide_marshal_encode_as(lua_State *L, int first, int n, const char *label,
                           int number, tide_mbuf *out, char *err,
                           size_t errlen);

/* Decodes bytes made by tide_marshal_encode and pushes the values. Returns
 * their count, or -1 after pushing one error message on malformed input or
 * when memory runs out. Safe on any bytes: nothing is read outside
 * data .. data+len. */
int tide_marshal_decode(lua_State *L, const char *data, size_t len);

/* Appends the bytecode of the Lua function at idx to out (not stripped, so
 * tracebacks keep line numbers). Refuses C functions and functions with any
 * upvalue other than _ENV. Does not change L's stack. Returns 0, or -1 with
 * a message in err and out->len as it was. */
int tide_marshal_dump_function(lua_State *L, int idx, tide_mbuf *out,
                               char *err, size_t errlen);

/* Loads bytecode made by tide_marshal_dump_function and pushes the function,
 * its _ENV bound to L's global table. Returns 0, or -1 after pushing an error
 * message. chunkname is used in load errors only (NULL for a default); the
 * function keeps the source name it was dumped with. The bytes must come
 * from tide_marshal_dump_function: Lua does not verify bytecode, so a
 * corrupted chunk (as opposed to a truncated one) is not safe to load. */
int tide_marshal_load_function(lua_State *L, const char *data, size_t len,
                               const char *chunkname);

#endif /* TIDE_MARSHAL_H */
