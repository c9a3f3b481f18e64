/*
 * AES-256-GCM decryption of field envelopes over the OpenSSL that Node.js
 * itself is built with (its symbols are exported to addons): one cipher
 * context per data key, keeping the key schedule, re-initialised with each
 * value's nonce. node:crypto makes a new context and a stream object per
 * value; this is the same algorithm and the same checks without them.
 * src/crypto/aes-gcm.ts loads it when it was built and falls back to
 * node:crypto when not; test/aes-gcm.test.ts checks both agree.
 *
 * Envelope layout (src/crypto/envelope.ts): header | nonce (12) | ciphertext | tag (16).
 * Associated data: the header's bytes, then the location string the caller passes.
 */
#include <node_api.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define NONCE_BYTES 12
#define TAG_BYTES 16
#define KEY_BYTES 32
#define STACK_BYTES 512

typedef struct {
  EVP_CIPHER_CTX *ctx;
} key_handle;

static void finalize_key(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  key_handle *handle = (key_handle *)data;
  if (handle->ctx) EVP_CIPHER_CTX_free(handle->ctx);
  free(handle);
}

#define CHECK(call)                                  \
  do {                                               \
    if ((call) != napi_ok) return NULL;              \
  } while (0)

static napi_value fail(napi_env env, const char *message) {
  napi_throw_error(env, "ERR_PHI_AEAD", message);
  return NULL;
}

/* key(key: Buffer of 32 bytes) -> handle */
static napi_value new_key(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return fail(env, "key: one argument expected");
  void *key = NULL;
  size_t key_length = 0;
  if (napi_get_buffer_info(env, argv[0], &key, &key_length) != napi_ok || key_length != KEY_BYTES) return fail(env, "key: a 32-byte Buffer expected");
  key_handle *handle = (key_handle *)calloc(1, sizeof(key_handle));
  if (!handle) return fail(env, "key: out of memory");
  handle->ctx = EVP_CIPHER_CTX_new();
  if (!handle->ctx || EVP_DecryptInit_ex(handle->ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
      EVP_CIPHER_CTX_ctrl(handle->ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_BYTES, NULL) != 1 ||
      EVP_DecryptInit_ex(handle->ctx, NULL, NULL, (const unsigned char *)key, NULL) != 1) {
    finalize_key(env, handle, NULL);
    return fail(env, "key: OpenSSL refused the key");
  }
  napi_value external;
  if (napi_create_external(env, handle, finalize_key, NULL, &external) != napi_ok) {
    finalize_key(env, handle, NULL);
    return fail(env, "key: cannot make the handle");
  }
  return external;
}

/*
 * open(handle, stored: Buffer, headerBytes: number, location: string) -> string | null
 * null when the value does not authenticate (or is too short); the plaintext decoded as UTF-8 otherwise.
 */
static napi_value open_value(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return fail(env, "open: four arguments expected");
  key_handle *handle = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&handle) != napi_ok || !handle || !handle->ctx) return fail(env, "open: not a key handle");
  unsigned char *stored = NULL;
  size_t stored_length = 0;
  if (napi_get_buffer_info(env, argv[1], (void **)&stored, &stored_length) != napi_ok) return fail(env, "open: a Buffer expected");
  uint32_t header_bytes = 0;
  if (napi_get_value_uint32(env, argv[2], &header_bytes) != napi_ok) return fail(env, "open: a header length expected");
  size_t location_length = 0;
  if (napi_get_value_string_utf8(env, argv[3], NULL, 0, &location_length) != napi_ok) return fail(env, "open: a location string expected");

  napi_value null_value;
  CHECK(napi_get_null(env, &null_value));
  if (stored_length < (size_t)header_bytes + NONCE_BYTES + TAG_BYTES) return null_value;
  /* OpenSSL takes int lengths: anything larger is refused, never truncated (bytea values are at most 1 GB). */
  if (stored_length > INT_MAX || location_length > INT_MAX) return null_value;
  const unsigned char *nonce = stored + header_bytes;
  const unsigned char *ciphertext = nonce + NONCE_BYTES;
  size_t ciphertext_length = stored_length - header_bytes - NONCE_BYTES - TAG_BYTES;
  unsigned char *tag = stored + stored_length - TAG_BYTES;

  char location_stack[STACK_BYTES];
  unsigned char plaintext_stack[STACK_BYTES];
  char *location = location_length < STACK_BYTES ? location_stack : (char *)malloc(location_length + 1);
  unsigned char *plaintext = ciphertext_length <= STACK_BYTES ? plaintext_stack : (unsigned char *)malloc(ciphertext_length);
  napi_value result = NULL;
  if (!location || !plaintext) {
    result = fail(env, "open: out of memory");
    goto done;
  }
  size_t copied = 0;
  if (napi_get_value_string_utf8(env, argv[3], location, location_length + 1, &copied) != napi_ok) {
    result = fail(env, "open: a location string expected");
    goto done;
  }

  EVP_CIPHER_CTX *ctx = handle->ctx;
  int length = 0;
  int produced = 0;
  int ok = EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1 &&
           (header_bytes == 0 || EVP_DecryptUpdate(ctx, NULL, &length, stored, (int)header_bytes) == 1) &&
           (copied == 0 || EVP_DecryptUpdate(ctx, NULL, &length, (const unsigned char *)location, (int)copied) == 1) &&
           EVP_DecryptUpdate(ctx, plaintext, &produced, ciphertext, (int)ciphertext_length) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, tag) == 1 &&
           EVP_DecryptFinal_ex(ctx, plaintext + produced, &length) == 1;
  if (!ok) {
    /* A value that did not authenticate leaves nothing on this thread's OpenSSL error queue (node:crypto reads it). */
    ERR_clear_error();
    result = null_value;
  } else if (napi_create_string_utf8(env, (const char *)plaintext, (size_t)produced + (size_t)length, &result) != napi_ok) {
    result = fail(env, "open: cannot make the string");
  }
  /* No plaintext left behind in a buffer that outlives the call. */
  OPENSSL_cleanse(plaintext, ciphertext_length);

done:
  if (location && location != location_stack) free(location);
  if (plaintext && plaintext != plaintext_stack) free(plaintext);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"key", NULL, new_key, NULL, NULL, NULL, napi_default, NULL},
      {"open", NULL, open_value, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
