// OpenSSL from Debian's libssl-dev, for the agent's TLS client (HerdwatchShipping's TLSContext).
// Macros Swift cannot import are wrapped as functions here.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

static inline long herdwatch_ssl_set_server_name(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}

static inline int herdwatch_ssl_ctx_require_tls12(SSL_CTX *context) {
    return (int)SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
}
