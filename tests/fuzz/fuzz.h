/*
 * fuzz.h — what every fuzz driver shares.
 *
 * A driver defines LLVMFuzzerTestOneInput (and optionally
 * LLVMFuzzerInitialize) and is linked either with libFuzzer
 * (-fsanitize=fuzzer, `make fuzz`) or with replay_main.c, which runs the
 * seed corpus plus deterministic mutations of it under ctest. A driver
 * frees everything it creates per input; state made once (certificates, TLS
 * contexts) lives in statics and is freed at exit.
 *
 * FUZZ_CHECK states a property the code under test promises; a violation
 * aborts, which both runners report as a crash with the input saved.
 */
#ifndef ZM_FUZZ_H
#define ZM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
