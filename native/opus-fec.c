/*
 * dvrec's native Opus decoder: libopus's opus_decode() exposed as it is, decode_fec flag included.
 *
 * Why this exists: decoding is most of a recorder's CPU (one 20 ms stereo frame per packet per speaker), and the
 * one decoder on the registry that exposes in-band FEC decoding is libopus compiled to WebAssembly (@evan/opus),
 * ~1.5x slower than native libopus. @discordjs/opus is native but hard-codes decode_fec = 0 and conceals 120 ms at
 * a time. So this file binds the three calls we need, and nothing else, against the libopus sources that
 * @discordjs/opus already ships and builds (binding.gyp reuses its gyp target). If this addon cannot be built
 * (no compiler), dvrec uses the WebAssembly decoder: same libopus 1.3.1, the same PCM for every decoded and
 * FEC-recovered frame (PLC can differ slightly: its pitch search is float code; test/opus-native.test.ts).
 *
 * Node-API only (ABI-stable across Node versions, loadable in worker threads). No allocation per call: the caller
 * passes the output buffer.
 */
#include <node_api.h>
#include <opus.h>
#include <stdint.h>

#define SAMPLE_RATE 48000
#define CHANNELS 2

static void finalize_decoder(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  opus_decoder_destroy((OpusDecoder*)data);
}

/* Throws a JS error and returns NULL (so `return fail(...)` reads naturally). */
static napi_value fail(napi_env env, const char* message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

static int get_decoder(napi_env env, napi_value v, OpusDecoder** out) {
  void* p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) return 0;
  *out = (OpusDecoder*)p;
  return 1;
}

/* create() -> External: a 48 kHz stereo decoder, freed when the handle is garbage-collected. */
static napi_value create(napi_env env, napi_callback_info info) {
  (void)info;
  int err = 0;
  OpusDecoder* d = opus_decoder_create(SAMPLE_RATE, CHANNELS, &err);
  if (err != OPUS_OK || d == NULL) return fail(env, "opus_decoder_create failed");
  napi_value ext;
  if (napi_create_external(env, d, finalize_decoder, NULL, &ext) != napi_ok) {
    opus_decoder_destroy(d);
    return fail(env, "cannot wrap the decoder");
  }
  return ext;
}

/*
 * decode(decoder, packet: Uint8Array | null, decodeFec: 0 | 1, out: Int16Array, frameSize) -> number
 * Samples per channel written to `out` (interleaved stereo), or a negative libopus error code.
 * packet null = packet-loss concealment of `frameSize` samples.
 */
static napi_value decode(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) return fail(env, "decode: 5 arguments expected");
  OpusDecoder* d;
  if (!get_decoder(env, argv[0], &d)) return fail(env, "decode: not a decoder");

  const unsigned char* data = NULL;
  size_t len = 0;
  napi_valuetype type;
  napi_typeof(env, argv[1], &type);
  if (type != napi_null && type != napi_undefined) {
    napi_typedarray_type tt;
    void* p;
    napi_value ab;
    size_t off;
    if (napi_get_typedarray_info(env, argv[1], &tt, &len, &p, &ab, &off) != napi_ok || tt != napi_uint8_array) return fail(env, "decode: packet must be a Uint8Array");
    data = (const unsigned char*)p;
    if (len == 0) data = NULL; /* libopus treats an empty packet as a loss too; make it explicit */
  }
  int32_t fec = 0;
  napi_get_value_int32(env, argv[2], &fec);

  napi_typedarray_type ot;
  size_t out_len;
  void* out_p;
  napi_value out_ab;
  size_t out_off;
  if (napi_get_typedarray_info(env, argv[3], &ot, &out_len, &out_p, &out_ab, &out_off) != napi_ok || ot != napi_int16_array) return fail(env, "decode: out must be an Int16Array");
  int32_t frame = 0;
  napi_get_value_int32(env, argv[4], &frame);
  /* Never let libopus write past the caller's buffer. */
  if (frame < 0 || (size_t)frame * CHANNELS > out_len) frame = (int32_t)(out_len / CHANNELS);

  int r = opus_decode(d, data, (opus_int32)len, (opus_int16*)out_p, frame, fec ? 1 : 0);
  napi_value result;
  napi_create_int32(env, r, &result);
  return result;
}

/* reset(decoder): forget the stream's history (OPUS_RESET_STATE). */
static napi_value reset(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  OpusDecoder* d;
  if (argc < 1 || !get_decoder(env, argv[0], &d)) return fail(env, "reset: not a decoder");
  opus_decoder_ctl(d, OPUS_RESET_STATE);
  return NULL;
}

/* version() -> the libopus version string this addon was built from. */
static napi_value version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value s;
  napi_create_string_utf8(env, opus_get_version_string(), NAPI_AUTO_LENGTH, &s);
  return s;
}

/* native/writeback.c: the addon's one helper that is not about Opus (the same build, so no second addon). */
napi_value dvrec_start_writeback(napi_env env, napi_callback_info info);

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"create", NULL, create, NULL, NULL, NULL, napi_default, NULL},
    {"decode", NULL, decode, NULL, NULL, NULL, napi_default, NULL},
    {"reset", NULL, reset, NULL, NULL, NULL, napi_default, NULL},
    {"version", NULL, version, NULL, NULL, NULL, napi_default, NULL},
    {"startWriteback", NULL, dvrec_start_writeback, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
