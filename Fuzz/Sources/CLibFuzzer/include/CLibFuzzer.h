// libFuzzer's driver entry point (compiler-rt FuzzerDriver.cpp). SwiftPM links an executable's
// entry point as <Module>_main, so the fuzz target calls the driver itself instead of relying
// on libFuzzer's own main().
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
