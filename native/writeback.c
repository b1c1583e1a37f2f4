/*
 * startWriteback(fd, offset, length) -> 0 or an errno: asks the kernel to start writing a range of a file to disk
 * now, without waiting for it (Linux sync_file_range with SYNC_FILE_RANGE_WRITE).
 *
 * Why: a finished WAV is synced before it is renamed into place, and that sync has to write out whatever the page
 * cache still holds of the capture. Left to the kernel's own writeback that can be gigabytes (10 tracks fed at
 * ~100x real time: 1.5-2.3 GB dirty at the stop, 1.3-2.5 s of syncing), and the kernel does not reliably write
 * back older pages of a file that is still being appended to. Started as the capture grows, the stop writes at
 * most the last few MiB of each track. Node has fdatasync but nothing that only STARTS writeback; an fdatasync
 * per range would wait for the disk. Advisory: a failure changes nothing but the stop's speed, so it is returned,
 * never thrown. Elsewhere than Linux it returns ENOSYS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>

napi_value dvrec_start_writeback(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  int64_t offset = 0, length = 0;
  int rc = EINVAL;
  if (argc == 3 && napi_get_value_int32(env, argv[0], &fd) == napi_ok && napi_get_value_int64(env, argv[1], &offset) == napi_ok &&
      napi_get_value_int64(env, argv[2], &length) == napi_ok && fd >= 0 && offset >= 0 && length >= 0) {
#ifdef __linux__
    rc = sync_file_range(fd, (off64_t)offset, (off64_t)length, SYNC_FILE_RANGE_WRITE) == 0 ? 0 : errno;
#else
    rc = ENOSYS;
#endif
  }
  napi_value out;
  napi_create_int32(env, rc, &out);
  return out;
}
