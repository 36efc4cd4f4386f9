/** A payload of about `kib` KiB serialised, with what JSON escapes and what UTF-8 takes 2 to 4 bytes for. */
export function largePayload(kib: number): { lines: string[] } {
  const line = 'Grüße, "quoted" \\ back\\slash\n\ttab 😀 ✓ 日本語 </script> \u2028 ';
  const lines: string[] = [];
  for (let bytes = 0; bytes < kib * 1024; ) {
    lines.push(`${lines.length} ${line}`);
    bytes += Buffer.byteLength(JSON.stringify(lines.at(-1))) + 1;
  }
  return { lines };
}
