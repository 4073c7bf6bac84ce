// Config input that cannot hurt control: every way a file can fail to read,
// decode or parse is that file's (and document's) error with a clear
// message, and the file's last good version keeps serving.
import t from 'tap';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AnyResource } from '../../api/index.js';
import { CONFIG_LIMITS, decodeDocuments, decodeText } from '../source-decode.js';
import { FileSource, parseFile } from '../source-files.js';
import { BAD_FILES } from './helpers/bad-files.js';

const svc = (name: string) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  selector: { app: ${name} }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
`;
const names = (rs: AnyResource[]) => rs.map((r) => `${r.kind}/${r.metadata.name}`).sort();

t.test('each bad file is that file\'s error with a clear message; its last good version keeps serving', async (t) => {
  const f = '/cfg/r.yaml';
  const good = parseFile(f, Buffer.from(`${svc('smiley')}---\n${svc('color')}`));
  t.same(good.errors, []);
  for (const b of BAD_FILES) {
    let out: ReturnType<typeof parseFile> | undefined;
    t.doesNotThrow(() => (out = parseFile(f, b.bytes(), good.resources)), `${b.name}: no throw`);
    if (!out) continue;
    t.ok(out.errors.length > 0, `${b.name}: reported`);
    t.ok(out.errors.every((e) => e.source === f), `${b.name}: names the file`);
    t.match(out.errors.map((e) => e.message).join('\n'), b.message, `${b.name}: ${b.message}`);
    if (/list|scalar/.test(b.name)) {
      t.match(out.errors[0]!.resource, /^document 1 \(line 1\)$/, `${b.name}: names the document`);
    } else t.same(names(out.resources), ['Service/color', 'Service/smiley'], `${b.name}: last good version kept`);
  }
});

t.test('an error in the second document names that document', async (t) => {
  const out = parseFile('/cfg/x.yaml', `${svc('a')}---\nb: &x [1]\nc: *y\n`);
  t.equal(out.errors[0]!.resource, 'document 2');
  const list = parseFile('/cfg/x.yaml', `${svc('a')}---\n- 1\n`);
  t.equal(list.errors[0]!.resource, 'document 2 (line 8)');
  t.same(names(list.resources), ['Service/a'], 'a list document loses only itself');
});

t.test('limits are what the README states, and within them input passes', async (t) => {
  t.same(CONFIG_LIMITS, { maxFileBytes: 8 * 1024 * 1024, maxAliasCount: 100, maxDepth: 64, maxNodes: 1_000_000 });
  const aliases = `a: &a { x: 1 }\nb: [${Array(50).fill('*a').join(',')}]\n`;
  const d = decodeDocuments(aliases);
  t.ok(d.ok, 'fifty plain aliases are fine');
  const deep = Array.from({ length: 60 }, (_, i) => `${' '.repeat(i)}a:`).join('\n') + ' 1\n';
  t.ok(decodeDocuments(deep).ok, '60 levels are fine');
  const bom = decodeText(Buffer.from('\ufeffkind: Service\n'));
  t.same(bom, { ok: true, text: 'kind: Service\n' }, 'a byte order mark is allowed');
  t.ok(decodeText(Buffer.from('a:\tb\r\n')).ok, 'tab and CR are text');
  t.ok(decodeDocuments('').ok, 'an empty file is no documents');
});

t.test('FileSource: a 50 MB file is not read, an unreadable file is reported, both keep the last good version', async (t) => {
  const d = mkdtempSync(join(tmpdir(), 'weft-dec-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  const f = join(d, 'a.yaml');
  writeFileSync(f, svc('smiley'));
  const src = new FileSource({ dir: d, watch: false });
  await src.rescan(true);
  t.same(names(src.resources()), ['Service/smiley']);
  writeFileSync(f, Buffer.alloc(50 * 1024 * 1024, 0x20));
  await src.rescan();
  t.same(names(src.resources()), ['Service/smiley']);
  t.match(src.errors()[0], { source: f, message: /more than the 8\.0 MiB limit/ });
  if (process.getuid?.() !== 0) {
    writeFileSync(f, svc('other'));
    chmodSync(f, 0o000);
    await src.rescan();
    t.same(names(src.resources()), ['Service/smiley']);
    t.match(src.errors()[0], { source: f, message: /cannot read file: EACCES/ });
    chmodSync(f, 0o644);
  }
  writeFileSync(f, svc('fixed'));
  await src.rescan();
  t.same(names(src.resources()), ['Service/fixed']);
  t.same(src.errors(), []);
  src.close();
});
