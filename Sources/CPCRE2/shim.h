#ifndef HERDWATCH_CPCRE2_SHIM_H
#define HERDWATCH_CPCRE2_SHIM_H
// PCRE2 from Debian's libpcre2-dev, 8-bit code units (UTF-8): Sigma's `re` modifier is PCRE.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif
