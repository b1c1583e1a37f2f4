# dvrec's native Opus decoder (native/opus-fec.c) and its writeback helper (native/writeback.c). libopus itself
# is not vendored here: the target reuses the libopus sources
# and the gyp target that @discordjs/opus (a dependency) ships, found wherever npm installed it.
{
  "variables": {
    "discordjs_opus": "<!(node -p \"require('path').dirname(require.resolve('@discordjs/opus/package.json'))\")"
  },
  "targets": [
    {
      "target_name": "dvrec_opus",
      "sources": ["native/opus-fec.c", "native/writeback.c"],
      "dependencies": ["<(discordjs_opus)/deps/binding.gyp:libopus"],
      "include_dirs": ["<(discordjs_opus)/deps/opus/include"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
