// Declarations only (include/CConcurrencyHooks.h); the symbols live in libswift_Concurrency.
#include "CConcurrencyHooks.h"
