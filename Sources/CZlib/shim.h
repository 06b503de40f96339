#ifndef HERDWATCH_CZLIB_SHIM_H
#define HERDWATCH_CZLIB_SHIM_H
#include <zlib.h>
#endif
