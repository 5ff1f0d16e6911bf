#include <libpmem.h>
