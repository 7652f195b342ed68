/**
 * bundle-sources.ts: in a bundle, each module's import.meta.url/filename/dirname is its own
 * source file's, so that `new URL('./x', import.meta.url)` names the file beside the source.
 */
import { describe, expect, it } from 'vitest';
import { withSourceUrls } from '../../../shared/src/bundle-sources.ts';

describe('withSourceUrls', () => {
  it("makes import.meta.url, .filename and .dirname literals of the module's source file", () => {
    const code =
      "const worker = new URL('./x.mjs', import.meta.url);\n" +
      'const here = [import.meta.filename, import.meta.dirname];\n';
    expect(withSourceUrls(code, '/repo/shared/src/vm/a b.ts')).toBe(
      'const worker = new URL(\'./x.mjs\', "file:///repo/shared/src/vm/a%20b.ts");\n' +
        'const here = ["/repo/shared/src/vm/a b.ts", "/repo/shared/src/vm"];\n',
    );
  });

  it('leaves any other use of import.meta as it is (the build refuses it), and names that only look alike', () => {
    const code = 'const r = import.meta.resolve("x"); const m = import.meta; const u = import.meta.urls;\n';
    expect(withSourceUrls(code, '/repo/a.ts')).toBe(code);
    expect(withSourceUrls('const pattern = /import\\.meta\\.url/;\n', '/repo/a.ts')).toBe(
      'const pattern = /import\\.meta\\.url/;\n',
    );
  });
});
