// The bad config files of issue 16 item 1: each must become that file's
// error (message matching `message`) while control keeps serving. Shared by
// control's unit test and the e2e test that drops them into a live mesh.
const laughs = (() => {
  let s = 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
  for (let i = 1; i <= 9; i++) s += `a${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(',')}]\n`;
  return s;
})();

export const BAD_FILES: Array<{ name: string; bytes: () => Buffer; message: RegExp }> = [
  { name: 'YAML alias bomb (billion laughs)', bytes: () => Buffer.from(laughs), message: /more than 100 aliases/ },
  { name: 'deep flow nesting', bytes: () => Buffer.from('['.repeat(100_000) + ']'.repeat(100_000)), message: /nested too deeply to parse/ },
  { name: 'deep block nesting under the parser limit', bytes: () => Buffer.from(Array.from({ length: 200 }, (_, i) => `${' '.repeat(i)}a:`).join('\n') + ' 1\n'), message: /nested more than 64 levels deep/ },
  { name: 'binary garbage', bytes: () => Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256)), message: /not valid UTF-8|not a text file/ },
  { name: 'a NUL byte', bytes: () => Buffer.from('kind: Service\x00\n'), message: /not a text file: a NUL byte \(a binary file\?\) at line 1, column 14/ },
  { name: 'invalid UTF-8', bytes: () => Buffer.concat([Buffer.from('apiVersion: v1\nkind: Service\nmetadata: { name: "'), Buffer.from([0xc3, 0x28]), Buffer.from('" }\n')]), message: /not valid UTF-8 \(near byte 4\d\)/ },
  { name: 'duplicate keys', bytes: () => Buffer.from('apiVersion: v1\nkind: Service\nmetadata: { name: x, namespace: default }\nspec:\n  selector: { app: x }\n  ports: [{ name: http, port: 80, targetPort: 8080 }]\nspec: {}\n'), message: /Map keys must be unique at line 7/ },
  { name: 'a document that is a list', bytes: () => Buffer.from('- a\n- b\n'), message: /a Kubernetes object must be a mapping, got a list/ },
  { name: 'a document that is a scalar', bytes: () => Buffer.from('just words\n'), message: /a Kubernetes object must be a mapping, got string/ },
  { name: 'unclosed flow mapping', bytes: () => Buffer.from('kind: HTTPRoute\n  metadata: [unclosed\n'), message: /YAML:/ },
  { name: 'an unresolved alias', bytes: () => Buffer.from('a: *nowhere\n'), message: /YAML: .*nowhere/i },
  { name: 'a 50 MB file', bytes: () => Buffer.alloc(50 * 1024 * 1024, 0x61), message: /file is 50\.0 MiB, more than the 8\.0 MiB limit/ },
];

