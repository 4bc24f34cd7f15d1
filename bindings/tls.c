/* tls.c — tide.ssl: the OpenSSL engine under tide.tls (lua/tide/tls.lua).
 *
 * Two types. A context (tide.ssl.context{...}) owns an SSL_CTX: the
 * certificate and key, the trust store, verification, ALPN, versions,
 * ciphers, and the contexts SNI selects per server name. A session
 * (ctx:session(...)) owns one SSL object whose two memory BIOs stand
 * where a socket would be: the Lua side feeds it the bytes the transport
 * read and sends the bytes it gives back, so TLS runs over any stream
 * (tcp, pipe, the in-memory pair, another TLS stream). The engine never
 * waits and never touches a socket; lua/tide/tls.lua does the pumping.
 *
 * Errors. Bad options raise at once. A failed handshake or a broken record
 * is returned as nil plus an error object with code "ETLS" whose message
 * carries OpenSSL's reason ("certificate verify failed: certificate has
 * expired", "wrong version number", ...), and the alert to send, so the
 * Lua side can send it before it raises.
 *
 * Ownership. A session keeps its context userdata in its user value (the
 * SNI and ALPN callbacks read the context's C struct), and a context keeps
 * the contexts SNI may select in its user value. SSL_free and
 * SSL_CTX_free run in __gc (and session:free()).
 */
#include "binding.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define CONTEXT_MT "tide.ssl.context"
#define SESSION_MT "tide.ssl.session"
#define MAX_SNI 64

/* The one user value of a context (the contexts of its SNI names, which
 * live as long as it) and of a session (its context). */
enum { CTX_SNI = 1, SESSION_CTX = 1 };
#define RECORD_MAX 16384      /* the most plaintext one TLS record carries */

typedef struct sni_entry {
  char *name;                 /* "a.example" or "*.example" */
  struct tls_ctx *ctx;
} sni_entry;

typedef struct tls_ctx {
  SSL_CTX *ctx;
  int verify;                 /* client: verify the server (default 1) */
  int verify_client;          /* server: 0 no, 1 required, 2 optional */
  unsigned char alpn[256];    /* ALPN list in wire format */
  unsigned alpn_len;
  sni_entry sni[MAX_SNI];
  int nsni;
} tls_ctx;

typedef struct tls_session {
  SSL *ssl;
  BIO *rbio, *wbio;           /* owned by ssl: what came in, what goes out */
  int server;
  tide_filter filter;         /* attached: the transport's reads come here */
  int transport_ref;          /* attached: registry ref to the transport */
  lua_State *L;               /* attached: the main thread */
} tls_session;

/* ---------------------------------------------------------------- errors */

/* [-0, +1, m] Pushes an ETLS error: `what`, then OpenSSL's reason (the
 * verification's when it failed), and clears OpenSSL's error queue. */
static void push_tls_error(lua_State *L, SSL *ssl, const char *what) {
  unsigned long e = ERR_peek_last_error();
  long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
  const char *reason = e ? ERR_reason_error_string(e) : NULL;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, what);
  if (reason) {
    luaL_addstring(&b, ": ");
    luaL_addstring(&b, reason);
  }
  if (vr != X509_V_OK && ssl && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    luaL_addstring(&b, ": ");
    luaL_addstring(&b, X509_verify_cert_error_string(vr));
  } else if (!reason && !e) {
    luaL_addstring(&b, ": unexpected end of the stream");
  }
  luaL_pushresult(&b);
  tide_lua_push_error(L, "ETLS", lua_tostring(L, -1));
  lua_remove(L, -2);  /* remove the message */
  ERR_clear_error();
}

/* [-0, +0, v] Raises an ETLS error about option `what`. */
static int raise_tls(lua_State *L, const char *what) {
  push_tls_error(L, NULL, what);
  return lua_error(L);
}

/* --------------------------------------------------------------- context */

/* Non-zero when `s` holds PEM text rather than a file name. */
static int is_pem(const char *s) { return strstr(s, "-----BEGIN") != NULL; }

/* [-0, +0, v] Loads the certificate chain `v` (file or PEM). */
static void load_cert(lua_State *L, SSL_CTX *ctx, const char *v) {
  BIO *bio;
  X509 *x;
  int ok;
  if (!is_pem(v)) {
    if (SSL_CTX_use_certificate_chain_file(ctx, v) != 1) raise_tls(L, lua_pushfstring(L, "cannot load cert '%s'", v));
    return;
  }
  bio = BIO_new_mem_buf(v, -1);
  x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
  ok = x != NULL && SSL_CTX_use_certificate(ctx, x) == 1;
  X509_free(x);
  while (ok && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)  /* the chain */
    if (SSL_CTX_add0_chain_cert(ctx, x) != 1) X509_free(x), ok = 0;
  BIO_free(bio);
  if (!ok) raise_tls(L, "cannot load cert (PEM)");
  ERR_clear_error();  /* the end of the chain */
}

/* [-0, +0, v] Loads the private key `v` (file or PEM). */
static void load_key(lua_State *L, SSL_CTX *ctx, const char *v) {
  BIO *bio;
  EVP_PKEY *k;
  int ok;
  if (!is_pem(v)) {
    if (SSL_CTX_use_PrivateKey_file(ctx, v, SSL_FILETYPE_PEM) != 1) raise_tls(L, lua_pushfstring(L, "cannot load key '%s'", v));
    return;
  }
  bio = BIO_new_mem_buf(v, -1);
  k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
  ok = k != NULL && SSL_CTX_use_PrivateKey(ctx, k) == 1;
  EVP_PKEY_free(k);
  BIO_free(bio);
  if (!ok) raise_tls(L, "cannot load key (PEM)");
}

/* [-0, +0, v] Trusts the certificates `v`: a file, a directory (hashed,
 * as c_rehash makes) or PEM text; a server also names them to clients it
 * asks for a certificate. */
static void load_ca(lua_State *L, SSL_CTX *ctx, const char *v) {
  struct stat st;
  if (is_pem(v)) {
    BIO *bio = BIO_new_mem_buf(v, -1);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509 *x;
    int n = 0;
    while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
      X509_STORE_add_cert(store, x);
      X509_free(x);
      n++;
    }
    BIO_free(bio);
    ERR_clear_error();
    if (n == 0) luaL_error(L, "option 'ca': no certificate in the PEM text");
    return;
  }
  if (stat(v, &st) != 0) luaL_error(L, "option 'ca': cannot open '%s'", v);
  if (S_ISDIR(st.st_mode) ? SSL_CTX_load_verify_locations(ctx, NULL, v) != 1
                          : SSL_CTX_load_verify_locations(ctx, v, NULL) != 1)
    raise_tls(L, lua_pushfstring(L, "cannot load ca '%s'", v));
  if (!S_ISDIR(st.st_mode)) {
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(v);
    if (names) SSL_CTX_set_client_CA_list(ctx, names);
  }
  ERR_clear_error();
}

/* [-0, +0, v] A protocol version name ("TLSv1.2", "1.2", ...). */
static int version_of(lua_State *L, const char *key, const char *v) {
  if (strcmp(v, "TLSv1") == 0 || strcmp(v, "TLSv1.0") == 0 || strcmp(v, "1.0") == 0) return TLS1_VERSION;
  if (strcmp(v, "TLSv1.1") == 0 || strcmp(v, "1.1") == 0) return TLS1_1_VERSION;
  if (strcmp(v, "TLSv1.2") == 0 || strcmp(v, "1.2") == 0) return TLS1_2_VERSION;
  if (strcmp(v, "TLSv1.3") == 0 || strcmp(v, "1.3") == 0) return TLS1_3_VERSION;
  return luaL_error(L, "option '%s': \"TLSv1.2\" or \"TLSv1.3\" expected, got \"%s\"", key, v);
}

/* [-0, +0, v] Field `key` of the options at index 1 as a string, or NULL. */
static const char *opt_string(lua_State *L, const char *key) {
  const char *v = NULL;
  int t = lua_getfield(L, 1, key);
  if (t == LUA_TSTRING) v = lua_tostring(L, -1);
  else if (t != LUA_TNIL) luaL_error(L, "option '%s': string expected, got %s", key, lua_typename(L, t));
  lua_pop(L, 1);  /* remove it: the options table keeps the string */
  return v;
}

/* ALPN on a server: the first of the server's protocols the client offers. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg) {
  tls_ctx *c = arg;
  unsigned char *sel;
  (void)ssl;
  if (SSL_select_next_proto(&sel, outlen, c->alpn, c->alpn_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;  /* go on without ALPN, as most servers do */
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

/* Whether SNI `name` matches `pattern` ("*.x" matches one label). */
static int sni_match(const char *pattern, const char *name) {
  if (pattern[0] == '*' && pattern[1] == '.') {
    const char *dot = strchr(name, '.');
    return dot != NULL && dot != name && strcasecmp(dot, pattern + 1) == 0;
  }
  return strcasecmp(pattern, name) == 0;
}

/* SNI on a server: switches to the context of the name the client asked. */
static int servername_cb(SSL *ssl, int *alert, void *arg) {
  tls_ctx *c = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  int i;
  (void)alert;
  if (name == NULL) return SSL_TLSEXT_ERR_NOACK;
  for (i = 0; i < c->nsni; i++) {
    if (sni_match(c->sni[i].name, name)) {
      tls_ctx *sub = c->sni[i].ctx;
      SSL_set_SSL_CTX(ssl, sub->ctx);
      SSL_set_verify(ssl, SSL_CTX_get_verify_mode(sub->ctx), NULL);
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_OK;  /* the default certificate */
}

/* [-0, +0, v] Reads opts.sni (name -> context) into `c`; the contexts go
 * to the user value at `ud` so that they live as long as `c`. */
static void read_sni(lua_State *L, tls_ctx *c, int ud) {
  if (lua_getfield(L, 1, "sni") == LUA_TNIL) {
    lua_pop(L, 1);  /* remove the nil */
    return;
  }
  luaL_argcheck(L, lua_istable(L, -1), 1, "option 'sni': table of server name -> context expected");
  lua_newtable(L);  /* the contexts to keep */
  lua_pushnil(L);
  while (lua_next(L, -3) != 0) {
    tls_ctx *sub = luaL_testudata(L, -1, CONTEXT_MT);
    size_t len;
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
    if (name == NULL || sub == NULL) luaL_error(L, "option 'sni': server name -> tide.tls context expected");
    if (c->nsni == MAX_SNI) luaL_error(L, "option 'sni': more than %d names", MAX_SNI);
    c->sni[c->nsni].name = strdup(name);
    c->sni[c->nsni++].ctx = sub;
    lua_pushvalue(L, -1);
    lua_rawseti(L, -4, c->nsni);  /* keep[n] = sub */
    lua_pop(L, 1);  /* remove the context, keep the name for lua_next */
  }
  lua_setiuservalue(L, ud, CTX_SNI);
  lua_pop(L, 1);  /* remove the sni table */
  SSL_CTX_set_tlsext_servername_callback(c->ctx, servername_cb);
  SSL_CTX_set_tlsext_servername_arg(c->ctx, c);
}

/* [-0, +0, v] Reads opts.alpn (a list of protocol names) into `c`. */
static void read_alpn(lua_State *L, tls_ctx *c) {
  lua_Integer i, n;
  if (lua_getfield(L, 1, "alpn") == LUA_TNIL) {
    lua_pop(L, 1);  /* remove the nil */
    return;
  }
  luaL_argcheck(L, lua_istable(L, -1), 1, "option 'alpn': list of protocol names expected");
  n = luaL_len(L, -1);
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *p;
    lua_rawgeti(L, -1, i);
    p = lua_tolstring(L, -1, &len);
    if (p == NULL || len == 0 || len > 255 || c->alpn_len + 1 + len > sizeof(c->alpn))
      luaL_error(L, "option 'alpn': item %d must be a name of 1 to 255 bytes (255 in all)", (int)i);
    c->alpn[c->alpn_len++] = (unsigned char)len;
    memcpy(c->alpn + c->alpn_len, p, len);
    c->alpn_len += (unsigned)len;
    lua_pop(L, 1);  /* remove the name */
  }
  lua_pop(L, 1);  /* remove the list */
  if (c->alpn_len == 0) return;
  SSL_CTX_set_alpn_protos(c->ctx, c->alpn, c->alpn_len);  /* as a client */
  SSL_CTX_set_alpn_select_cb(c->ctx, alpn_select, c);   /* as a server */
}

/* tide.ssl.context{cert=, key=, ca=, verify=, verify_client=, alpn=,
 * min_version=, max_version=, ciphers=, ciphersuites=, sni=} -> context.
 * See docs/tls.md. */
static int l_context(lua_State *L) {
  tls_ctx *c;
  const char *cert, *key, *ca, *v;
  int t, ud;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  c = lua_newuserdatauv(L, sizeof(*c), CTX_SNI);
  memset(c, 0, sizeof(*c));
  ud = lua_gettop(L);
  luaL_setmetatable(L, CONTEXT_MT);
  if ((c->ctx = SSL_CTX_new(TLS_method())) == NULL) return raise_tls(L, "cannot create a context");
  SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                      SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(c->ctx, SSL_MODE_RELEASE_BUFFERS);  /* idle connections hold no buffers */
  SSL_CTX_set_session_id_context(c->ctx, (const unsigned char *)"tide", 4);
  v = opt_string(L, "min_version");
  SSL_CTX_set_min_proto_version(c->ctx, v ? version_of(L, "min_version", v) : TLS1_2_VERSION);
  if ((v = opt_string(L, "max_version")) != NULL)
    SSL_CTX_set_max_proto_version(c->ctx, version_of(L, "max_version", v));
  if ((v = opt_string(L, "ciphers")) != NULL && SSL_CTX_set_cipher_list(c->ctx, v) != 1)
    return raise_tls(L, "option 'ciphers'");
  if ((v = opt_string(L, "ciphersuites")) != NULL && SSL_CTX_set_ciphersuites(c->ctx, v) != 1)
    return raise_tls(L, "option 'ciphersuites'");
  cert = opt_string(L, "cert");
  key = opt_string(L, "key");
  if ((cert == NULL) != (key == NULL)) return luaL_error(L, "options 'cert' and 'key' go together");
  if (cert) {
    /* send the chain as given (cert and its chain in `cert`): no building
     * it again from the trust store at every handshake */
    SSL_CTX_set_mode(c->ctx, SSL_MODE_NO_AUTO_CHAIN);
    load_cert(L, c->ctx, cert);
    load_key(L, c->ctx, key);
    if (SSL_CTX_check_private_key(c->ctx) != 1) return raise_tls(L, "'key' does not match 'cert'");
  }
  if ((ca = opt_string(L, "ca")) != NULL) load_ca(L, c->ctx, ca);
  else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) return raise_tls(L, "cannot load the system's certificates");
  t = lua_getfield(L, 1, "verify");
  c->verify = t == LUA_TNIL || lua_toboolean(L, -1);
  t = lua_getfield(L, 1, "verify_client");
  if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "optional") == 0) c->verify_client = 2;
  else if (t == LUA_TBOOLEAN || t == LUA_TNIL) c->verify_client = lua_toboolean(L, -1);
  else return luaL_error(L, "option 'verify_client': boolean or \"optional\" expected");
  lua_pop(L, 2);  /* remove verify and verify_client */
  if (c->verify_client)
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER | (c->verify_client == 1 ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
  read_alpn(L, c);
  read_sni(L, c, ud);
  lua_settop(L, ud);
  return 1;
}

static int ctx_gc(lua_State *L) {
  tls_ctx *c = luaL_checkudata(L, 1, CONTEXT_MT);
  int i;
  for (i = 0; i < c->nsni; i++) free(c->sni[i].name);
  c->nsni = 0;
  SSL_CTX_free(c->ctx);
  c->ctx = NULL;
  return 0;
}

/* --------------------------------------------------------------- session */

/* ctx:session(server [, servername]) -> session: the client checks the
 * server's certificate against `servername` (a host name, sent as SNI, or
 * an IP address, checked against the IP SANs) when the context verifies. */
static int ctx_session(lua_State *L) {
  tls_ctx *c = luaL_checkudata(L, 1, CONTEXT_MT);
  int server = lua_toboolean(L, 2);
  const char *name = luaL_optstring(L, 3, NULL);
  unsigned char ip[16];
  int is_ip = name && (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1);
  tls_session *t = lua_newuserdatauv(L, sizeof(*t), SESSION_CTX);
  memset(t, 0, sizeof(*t));
  t->transport_ref = LUA_NOREF;
  luaL_setmetatable(L, SESSION_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, SESSION_CTX);  /* the context lives as long as the session */
  t->server = server;
  if ((t->ssl = SSL_new(c->ctx)) == NULL) return raise_tls(L, "cannot create a session");
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (t->rbio == NULL || t->wbio == NULL) {
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    return raise_tls(L, "cannot create a session");
  }
  BIO_set_mem_eof_return(t->rbio, -1);  /* empty means "more to come" */
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  if (server) {
    SSL_set_accept_state(t->ssl);
    return 1;
  }
  SSL_set_connect_state(t->ssl);
  SSL_set_verify(t->ssl, c->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
  if (name && !is_ip) SSL_set_tlsext_host_name(t->ssl, name);
  if (name && c->verify) {
    X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name) != 1 : SSL_set1_host(t->ssl, name) != 1)
      return raise_tls(L, "cannot set the name to verify");
  }
  return 1;
}

static tls_session *check_session(lua_State *L) {
  tls_session *t = luaL_checkudata(L, 1, SESSION_MT);
  if (t->ssl == NULL) luaL_argerror(L, 1, "TLS session is closed");
  return t;
}

/* [-0, +1, m] Pushes what the session has to send ("" when nothing). */
static void push_output(lua_State *L, tls_session *t) {
  size_t n = BIO_ctrl_pending(t->wbio);
  char small[RECORD_MAX];
  luaL_Buffer b;
  if (n == 0) {
    lua_pushliteral(L, "");
  } else if (n <= sizeof(small)) {  /* the usual case: no Lua buffer */
    BIO_read(t->wbio, small, (int)n);
    lua_pushlstring(L, small, n);
  } else {
    BIO_read(t->wbio, luaL_buffinitsize(L, &b, n), (int)n);
    luaL_pushresultsize(&b, n);
  }
}

/* [-0, +0, v] Feeds the optional string at `idx` to the session. */
static void take_input(lua_State *L, tls_session *t, int idx) {
  size_t len;
  const char *p = luaL_optlstring(L, idx, NULL, &len);
  if (p != NULL && len > 0 && BIO_write(t->rbio, p, (int)len) != (int)len)
    luaL_error(L, "not enough memory");
}

/* [-0, +3, m] The failure of a session: nil, the error, the alert. */
static int failed(lua_State *L, tls_session *t, const char *what) {
  lua_pushnil(L);
  push_tls_error(L, t->ssl, what);
  push_output(L, t);
  return 3;
}

/* session:handshake([input]) -> done, output | nil, err, output: goes on
 * with the handshake; `output` is what to send to the peer. */
static int s_handshake(lua_State *L) {
  tls_session *t = check_session(L);
  int r;
  take_input(L, t, 2);
  ERR_clear_error();
  r = SSL_do_handshake(t->ssl);
  if (r != 1) {
    int e = SSL_get_error(t->ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
      return failed(L, t, "handshake failed");
  }
  lua_pushboolean(L, r == 1);
  push_output(L, t);
  return 2;
}

/* session:decrypt([input]) -> plain, output, eof | nil, err, output: the
 * application bytes the records that came hold ("" when none yet), what
 * to send (key updates, alerts), and whether the peer sent close_notify. */
static int s_decrypt(lua_State *L) {
  tls_session *t = check_session(L);
  char rec[RECORD_MAX];
  luaL_Buffer b;
  int eof = 0, n, e, more = 0;  /* more: b holds what came before rec */
  take_input(L, t, 2);
  ERR_clear_error();
  for (;;) {
    n = SSL_read(t->ssl, rec, sizeof(rec));
    if (n <= 0) break;
    /* nothing more to decrypt: do not ask OpenSSL again */
    if (SSL_pending(t->ssl) == 0 && BIO_ctrl_pending(t->rbio) == 0) break;
    if (!more) luaL_buffinit(L, &b), more = 1;
    luaL_addlstring(&b, rec, (size_t)n);
  }
  if (n <= 0) {
    e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_ZERO_RETURN) eof = 1;
    else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
      if (more) luaL_pushresult(&b);
      return failed(L, t, "bad record");
    }
    n = 0;
  }
  if (more) {  /* one record: one copy; several: the buffer */
    luaL_addlstring(&b, rec, (size_t)n);
    luaL_pushresult(&b);
  } else {
    lua_pushlstring(L, rec, (size_t)n);
  }
  push_output(L, t);
  lua_pushboolean(L, eof);
  return 3;
}

/* session:encrypt(plain) -> the records to send. */
static int s_encrypt(lua_State *L) {
  tls_session *t = check_session(L);
  size_t len;
  const char *p = luaL_checklstring(L, 2, &len);
  ERR_clear_error();
  while (len > 0) {  /* SSL_write takes an int */
    int chunk = len > (1u << 30) ? 1 << 30 : (int)len, n = SSL_write(t->ssl, p, chunk);
    if (n <= 0) {
      push_tls_error(L, t->ssl, "write failed");
      return lua_error(L);
    }
    p += n;
    len -= (size_t)n;
  }
  push_output(L, t);
  return 1;
}

/* session:close_notify() -> the close_notify alert to send (once; "" after). */
static int s_close_notify(lua_State *L) {
  tls_session *t = check_session(L);
  if (!(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)) {
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
  }
  push_output(L, t);
  return 1;
}

/* session:info() -> {version=, cipher=, alpn=, servername=} */
static int s_info(lua_State *L) {
  tls_session *t = check_session(L);
  const unsigned char *alpn;
  unsigned alen;
  const char *name = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, SSL_get_version(t->ssl));
  lua_setfield(L, -2, "version");
  lua_pushstring(L, SSL_get_cipher_name(t->ssl));
  lua_setfield(L, -2, "cipher");
  SSL_get0_alpn_selected(t->ssl, &alpn, &alen);
  if (alen > 0) {
    lua_pushlstring(L, (const char *)alpn, alen);
    lua_setfield(L, -2, "alpn");
  }
  if (name) {
    lua_pushstring(L, name);
    lua_setfield(L, -2, "servername");
  }
  return 1;
}

/* [-0, +1, m] Pushes the one-line RFC 2253 form of `name`. */
static void push_name(lua_State *L, const X509_NAME *name) {
  BIO *bio = BIO_new(BIO_s_mem());
  char *p;
  long n;
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
  n = BIO_get_mem_data(bio, &p);
  lua_pushlstring(L, p, (size_t)n);
  BIO_free(bio);
}

/* [-0, +1, m] Pushes `t` (an ASN1 time) as seconds since the epoch. */
static void push_time(lua_State *L, const ASN1_TIME *t) {
  struct tm tm;
  if (ASN1_TIME_to_tm(t, &tm) == 1) lua_pushinteger(L, (lua_Integer)timegm(&tm));
  else lua_pushnil(L);
}

/* [-0, +1, m] Pushes the subject alternative names of `x`, as OpenSSL
 * prints them ("DNS:localhost", "IP Address:127.0.0.1"). */
static void push_sans(lua_State *L, X509 *x) {
  GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  int i, n = 0;
  lua_newtable(L);
  for (i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
    char ip[INET6_ADDRSTRLEN];
    if (g->type == GEN_DNS) {
      lua_pushfstring(L, "DNS:%s", (const char *)ASN1_STRING_get0_data(g->d.dNSName));
    } else if (g->type == GEN_IPADD && (g->d.iPAddress->length == 4 || g->d.iPAddress->length == 16)) {
      inet_ntop(g->d.iPAddress->length == 4 ? AF_INET : AF_INET6, g->d.iPAddress->data, ip, sizeof(ip));
      lua_pushfstring(L, "IP Address:%s", ip);
    } else if (g->type == GEN_EMAIL) {
      lua_pushfstring(L, "email:%s", (const char *)ASN1_STRING_get0_data(g->d.rfc822Name));
    } else if (g->type == GEN_URI) {
      lua_pushfstring(L, "URI:%s", (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier));
    } else {
      continue;
    }
    lua_rawseti(L, -2, ++n);
  }
  GENERAL_NAMES_free(names);
}

/* session:peer_certificate() -> nil or {subject=, issuer=, san=, serial=,
 * not_before=, not_after=, fingerprint=, pem=} */
static int s_peer_certificate(lua_State *L) {
  tls_session *t = check_session(L);
  X509 *x = SSL_get1_peer_certificate(t->ssl);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0, i;
  luaL_Buffer b;
  BIGNUM *bn;
  BIO *bio;
  char *p;
  long n;
  if (x == NULL) return lua_pushnil(L), 1;
  lua_createtable(L, 0, 8);
  push_name(L, X509_get_subject_name(x));
  lua_setfield(L, -2, "subject");
  push_name(L, X509_get_issuer_name(x));
  lua_setfield(L, -2, "issuer");
  push_sans(L, x);
  lua_setfield(L, -2, "san");
  push_time(L, X509_get0_notBefore(x));
  lua_setfield(L, -2, "not_before");
  push_time(L, X509_get0_notAfter(x));
  lua_setfield(L, -2, "not_after");
  if ((bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(x), NULL)) != NULL) {
    char *hex = BN_bn2hex(bn);
    lua_pushstring(L, hex);
    lua_setfield(L, -2, "serial");
    OPENSSL_free(hex);
    BN_free(bn);
  }
  X509_digest(x, EVP_sha256(), md, &mdlen);
  luaL_buffinit(L, &b);
  for (i = 0; i < mdlen; i++) {
    char hx[4];
    snprintf(hx, sizeof(hx), i + 1 < mdlen ? "%02X:" : "%02X", md[i]);
    luaL_addstring(&b, hx);
  }
  luaL_pushresult(&b);
  lua_setfield(L, -2, "fingerprint");
  bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  n = BIO_get_mem_data(bio, &p);
  lua_pushlstring(L, p, (size_t)n);
  lua_setfield(L, -2, "pem");
  BIO_free(bio);
  X509_free(x);
  return 1;
}

/* session:free(): frees the SSL object now (also __gc). */
static int s_free(lua_State *L) {
  tls_session *t = luaL_checkudata(L, 1, SESSION_MT);
  SSL_free(t->ssl);  /* and its BIOs */
  t->ssl = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, t->transport_ref);
  t->transport_ref = LUA_NOREF;
  return 0;
}

/* [-0, +0, m] Sends what the session has to send (alerts, key updates) on
 * its transport; a failure is the transport's to report. */
static void send_output(lua_State *L, tls_session *t) {
  if (BIO_ctrl_pending(t->wbio) == 0) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->transport_ref);
  lua_getfield(L, -1, "write");
  lua_insert(L, -2);
  push_output(L, t);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);  /* a closed transport */
}

/* The filter of an attached session: decrypts what the transport read
 * into the TLS stream over it. */
static void filter_read(lua_State *L, tide_stream *tr, const char *p, size_t n, void *data) {
  tls_session *t = data;
  tide_stream *s = tr->over;
  char rec[RECORD_MAX];
  int k, e;
  if (s == NULL || t->ssl == NULL) return;
  if (BIO_write(t->rbio, p, (int)n) != (int)n) {
    tide_lua_push_uverror(L, UV_ENOMEM);
    tide_stream_end(L, s, lua_gettop(L));
    lua_pop(L, 1);  /* remove the error */
    return;
  }
  ERR_clear_error();
  while ((k = SSL_read(t->ssl, rec, sizeof(rec))) > 0) tide_stream_feed(L, s, rec, (size_t)k);
  e = SSL_get_error(t->ssl, k);
  if (e == SSL_ERROR_ZERO_RETURN) {
    tide_stream_end(L, s, 0);
  } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
    push_tls_error(L, t->ssl, "bad record");
    tide_stream_end(L, s, lua_gettop(L));
    lua_pop(L, 1);  /* remove the error */
  }
  send_output(L, t);
}

/* The transport ended (err_idx 0) or failed: so does the TLS stream. */
static void filter_end(lua_State *L, tide_stream *tr, int err_idx, void *data) {
  (void)data;
  if (tr->over) tide_stream_end(L, tr->over, err_idx);
}

/* session:attach(transport, stream) -> true, or false when either is not
 * a tide stream: from now on the session decrypts what `transport` reads
 * straight into `stream` (the TLS stream made over it with
 * impl.transport), in C, as the transport's filter. */
static int s_attach(lua_State *L) {
  tls_session *t = check_session(L);
  tide_stream **tr = luaL_testudata(L, 2, TIDE_STREAM_MT), **s = luaL_testudata(L, 3, TIDE_STREAM_MT);
  if (tr == NULL || s == NULL || *tr == NULL || *s == NULL || (*tr)->over != *s || (*tr)->filter)
    return lua_pushboolean(L, 0), 1;
  lua_pushvalue(L, 2);
  t->transport_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  t->filter.read = filter_read;
  t->filter.end = filter_end;
  t->filter.data = t;
  tide_stream_filter(L, *tr, &t->filter);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg session_methods[] = {
  {"handshake", s_handshake},
  {"decrypt", s_decrypt},
  {"encrypt", s_encrypt},
  {"close_notify", s_close_notify},
  {"info", s_info},
  {"peer_certificate", s_peer_certificate},
  {"free", s_free},
  {"attach", s_attach},
  {NULL, NULL}
};

/* [-0, +0, m] Adds tide.ssl to the module table on top. */
int tide_open_tls(lua_State *L) {
  luaL_newmetatable(L, CONTEXT_MT);
  lua_pushcfunction(L, ctx_gc);
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  lua_pushcfunction(L, ctx_session);
  lua_setfield(L, -2, "session");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);  /* remove the metatable */
  luaL_newmetatable(L, SESSION_MT);
  lua_pushcfunction(L, s_free);
  lua_setfield(L, -2, "__gc");
  luaL_newlib(L, session_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);  /* remove the metatable */
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, l_context);
  lua_setfield(L, -2, "context");
  lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
  lua_setfield(L, -2, "openssl_version");
  lua_setfield(L, -2, "ssl");
  return 0;
}
