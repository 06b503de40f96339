// CRC-32C (Castagnoli) with the processor's instruction where there is one: SSE 4.2's crc32 on
// x86-64, the CRC extension's crc32c on 64-bit Arm. The spool checksums every record it writes and
// reads; the table-driven version in Swift (HerdwatchShipping.CRC32C) is the fallback and the
// reference. Header only: compiled with the Swift module that imports it.
#ifndef HERDWATCH_CRC32C_H
#define HERDWATCH_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

// Per architecture: whether the instruction is there, and one step over 8 bytes and over 1 byte.
#if defined(__x86_64__)
#include <cpuid.h>
#define HERDWATCH_CRC32C_TARGET __attribute__((target("sse4.2")))
#define HERDWATCH_CRC32C_STEP8(crc, word) ((uint32_t)__builtin_ia32_crc32di((crc), (word)))
#define HERDWATCH_CRC32C_STEP1(crc, byte) __builtin_ia32_crc32qi((crc), (byte))

static inline int herdwatch_crc32c_available(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & bit_SSE4_2) != 0;
}

#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#define HERDWATCH_CRC32C_TARGET __attribute__((target("crc")))
#define HERDWATCH_CRC32C_STEP8(crc, word) __builtin_arm_crc32cd((crc), (word))
#define HERDWATCH_CRC32C_STEP1(crc, byte) __builtin_arm_crc32cb((crc), (byte))

static inline int herdwatch_crc32c_available(void) {
    return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
}
#endif

#if defined(HERDWATCH_CRC32C_TARGET)
HERDWATCH_CRC32C_TARGET
static inline uint32_t herdwatch_crc32c_update(uint32_t crc, const uint8_t *bytes, size_t count) {
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, bytes, 8);
        crc = HERDWATCH_CRC32C_STEP8(crc, word);
        bytes += 8;
        count -= 8;
    }
    while (count > 0) {
        crc = HERDWATCH_CRC32C_STEP1(crc, *bytes);
        bytes++;
        count--;
    }
    return crc;
}
#else
static inline int herdwatch_crc32c_available(void) { return 0; }
static inline uint32_t herdwatch_crc32c_update(uint32_t crc, const uint8_t *bytes, size_t count) {
    (void)bytes; (void)count;
    return crc;
}
#endif

#endif
