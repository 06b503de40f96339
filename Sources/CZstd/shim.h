#ifndef HERDWATCH_CZSTD_SHIM_H
#define HERDWATCH_CZSTD_SHIM_H
#include <zstd.h>
#endif
