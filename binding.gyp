# dvrec's native Opus decoder (native/opus-fec.c). libopus itself is not vendored here: the target reuses the
# libopus sources and gyp target that @discordjs/opus (a dependency) ships, found wherever npm installed it.
{
  "variables": {
    "discordjs_opus": "<!(node -p \"require('path').dirname(require.resolve('@discordjs/opus/package.json'))\")"
  },
  "targets": [
    {
      "target_name": "dvrec_opus",
      "sources": ["native/opus-fec.c"],
      "dependencies": ["<(discordjs_opus)/deps/binding.gyp:libopus"],
      "include_dirs": ["<(discordjs_opus)/deps/opus/include"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
