/* Unit tests: MQO_TEST_ASAN is defined when AddressSanitizer is on (clang's __has_feature,
 * gcc's __SANITIZE_ADDRESS__). Tests that replace glibc's allocator to inject failures do so
 * only without it: ASan's allocator takes those calls itself. */
#ifndef MQO_TEST_ASAN_H
#define MQO_TEST_ASAN_H

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MQO_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(MQO_TEST_ASAN)
#define MQO_TEST_ASAN 1
#endif

#endif
