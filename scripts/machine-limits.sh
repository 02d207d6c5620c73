#!/usr/bin/env bash
# The raw limits of this machine that the store benchmarks are compared against:
# sequential write bandwidth with one fdatasync (dd), latency of a 1 KiB append + fdatasync,
# and memcpy bandwidth. Writes to a temporary directory next to the store's (same disk).
set -euo pipefail
dir=$(mktemp -d "${APOGEE_BENCH_DIR:-${TMPDIR:-/tmp}}/apogee-limits.XXXXXX")
trap 'rm -rf "$dir"' EXIT

echo "== dd: 512 MiB sequential write, one fdatasync at the end"
dd if=/dev/zero of="$dir/dd.bin" bs=1M count=512 conv=fdatasync 2>&1 | tail -1
rm -f "$dir/dd.bin"

for kib in 1 64; do
echo "== ${kib} KiB append + fdatasync, 2000 times"
python3 - "$dir/fsync.bin" "$kib" <<'PY'
import os, sys, time
path, kib = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.posix_fallocate(fd, 0, 256 * 1024 * 1024)
block = b"x" * (1024 * kib)
samples = []
for _ in range(2000):
    started = time.perf_counter()
    os.write(fd, block)
    os.fdatasync(fd)
    samples.append(time.perf_counter() - started)
os.close(fd)
samples.sort()
pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1e6
mean = sum(samples) / len(samples)
print(f"write {kib} KiB + fdatasync: p50 {pick(0.5):.0f} us, p99 {pick(0.99):.0f} us, max {samples[-1]*1e6:.0f} us"
      f" -> {1 / mean:.0f} syncs/s, {kib * 1024 / mean / 1e6:.0f} MB/s")
PY
rm -f "$dir/fsync.bin"
done

echo "== memcpy bandwidth (256 MiB buffers, 8 rounds)"
cat > "$dir/memcpy.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(void) {
    size_t size = 256u << 20;
    char *from = malloc(size), *to = malloc(size);
    if (!from || !to) return 1;
    memset(from, 1, size); memset(to, 0, size);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int round = 0; round < 8; round++) { memcpy(to, from, size); from[round] = (char)round; }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double seconds = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("memcpy: %.1f GB/s (check %d)\n", 8.0 * size / seconds / 1e9, to[7]);
    return 0;
}
C
cc -O2 -o "$dir/memcpy" "$dir/memcpy.c" && "$dir/memcpy"
