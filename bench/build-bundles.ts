/**
 * Builds each Lambda's bundle with the CDK wrapper itself: a DispatcherFunction in a bare
 * stack stages its asset at construction, running esbuild with whatever bundling options
 * lib/constructs/function.ts sets today (format, minify, target, banner, externals), so the
 * bench measures exactly what a deploy would upload. Run in its own process (aws-cdk-lib is
 * heavy) by bench/cold-start.ts; prints `{name: bundleDir}` as JSON.
 *
 *   node bench/build-bundles.ts <outDir> <name>=<entry>...
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { DispatcherFunction } from '../lib/constructs/function.ts';

const [outDir, ...entries] = process.argv.slice(2);
if (!outDir || entries.length === 0)
  throw new Error('usage: node bench/build-bundles.ts <outDir> <name>=<entry>...');

const built: Record<string, string> = {};
for (const pair of entries) {
  const [name, entry] = pair.split('=');
  if (!name || !entry) throw new Error(`bad argument ${pair}: expected <name>=<entry>`);
  const outdir = join(outDir, name);
  const app = new App({ outdir });
  new DispatcherFunction(new Stack(app, 'Bench'), 'Function', {
    entry,
    description: `bench: ${name}`,
    serviceName: name,
  });
  const assets = readdirSync(outdir).filter((file) => file.startsWith('asset.'));
  const [asset] = assets;
  if (assets.length !== 1 || !asset)
    throw new Error(`${name}: expected one staged asset in ${outdir}, found ${assets.length}`);
  built[name] = join(outdir, asset);
}
process.stdout.write(`${JSON.stringify(built)}\n`);
