import { RE2JS } from 're2js';
import { literalPrecheck, requiredLiteral } from '../lib/dr/regex-literal';

/**
 * The `matches` pre-check may only ever say "cannot match" when the regex
 * agrees: a wrong literal would hide a detection. The table pins what it
 * extracts; the differential test runs RE2JS itself over many patterns and
 * strings and fails on any value RE2 matches that the pre-check would drop.
 */
describe('requiredLiteral', () => {
  it.each([
    ['payload7\\.(ps1|vbs|hta)\\b', 'payload7.'],
    ['powershell.*-enc(odedcommand)?', 'powershell'],
    ['mimikatz', 'mimikatz'],
    ['abc?def', 'def'],
    ['abcd?ef', 'abc'],
    ['ab*cdef', 'cdef'],
    ['ab+cd', 'ab'],
    ['x{2,3}longer', 'longer'],
    ['\\\\windows\\\\temp\\\\', '\\windows\\temp\\'],
    ['^cmd\\.exe$', 'cmd.exe'],
    ['(?:foo|bar)bazqux', 'bazqux'],
    ['(?P<name>foo)barbaz', 'barbaz'],
    ['[a-z]+\\.onion', '.onion'],
    ['[]ab]xyzw', 'xyzw'],
    ['a\\d+bcde', 'bcde'],
    ['😀?abc', 'abc'],
    ['ab😀?', 'ab'],
    ['lazy.*?tail', 'lazy'],
    ['ab+?cde', 'cde'],
  ])('%s requires %s', (pattern, literal) => {
    expect(requiredLiteral(pattern)).toBe(literal);
  });

  it.each([
    ['top-level alternation', 'foo|bar'],
    ['inline case folding', '(?i)Mimikatz'],
    ['inline flags part-way', 'ab(?i)cdef'],
    ['a POSIX class', '[[:digit:]]abcdef'],
    ['a hex escape', '\\x41bcdef'],
    ['a Unicode class', '\\pLabcdef'],
    ['quoted text', '\\Qa.b\\E'],
    ['a newline escape', 'abc\\ndef'],
    ['only classes and groups', '[a-z]+(x|y)\\d'],
    ['an empty pattern', ''],
    ['a brace that is not a repetition, before an alternation', 'abc{x|defg'],
    ['a brace that is not a repetition, closed later', 'abcd{x|qq}'],
    ['quoted brackets inside a group', '(\\Q(\\E)|xy(\\Q)\\E)abcd'],
  ])('gives none for %s (%s)', (_what, pattern) => {
    expect(requiredLiteral(pattern)).toBeUndefined();
  });
});

describe('literalPrecheck', () => {
  it('is absent for literals too short to help, or non-ASCII ones when folding', () => {
    expect(literalPrecheck('a.*', false)).toBeUndefined();
    expect(literalPrecheck('straße', false)).toBeUndefined();
    expect(literalPrecheck('straße', true)).toBeDefined();
  });

  it('folds ASCII case, and lets non-ASCII values through to the regex', () => {
    const check = literalPrecheck('Kernel32', false)!;
    expect(check('LOADS KERNEL32.DLL')).toBe(true);
    expect(check('loads user32.dll')).toBe(false);
    // RE2 folds the Kelvin sign to k: the regex decides, not the pre-check.
    expect(check('\u212Aernel32')).toBe(true);
    expect(RE2JS.compile('Kernel32', RE2JS.CASE_INSENSITIVE).test('\u212Aernel32')).toBe(true);
    // And the long s to s, which lower-casing does not.
    expect(RE2JS.compile('powershell', RE2JS.CASE_INSENSITIVE).test('POWERſHELL -enc')).toBe(true);
    expect(literalPrecheck('powershell', false)!('POWERſHELL -enc')).toBe(true);
  });

  // Patterns with traps: optional atoms, quantifiers, escapes, groups, classes, anchors, astral characters.
  const PATTERNS = [
    'payload\\.(ps1|vbs)\\b', 'powershell.*-enc', 'abc?def', 'ab*cd', 'ab+cd', 'a{0,2}bcd', 'x{2}yz', '^cmd\\.exe$',
    '(?:foo|bar)baz', '[a-c]+\\.on', '[]a]bc', 'a\\d+bc', '😀?ab', 'ab😀?', 'lazy.*?ta', 'ab+?cd', 'ab\\.?cd', 'abc{x|defg', 'abcd{x|qq}', 'ab{2}cd', 'x{2,3}yz',
    '\\\\tmp\\\\x', 'a(b)?cd', 'ab[cd]?ef', 'ab{1,}cd', 'q?wert', 'foo\\b.bar', 'zz(?P<n>y)?zz', 'ab$|cd',
  ];
  const ALPHABET = ['a', 'b', 'c', 'd', 'e', 'f', 'A', 'B', 'C', 'D', '.', '\\', 'x', 'y', 'z', 'Z', 'w', 'r', 't', 'q', '-', ' ', '😀', 'ſ', '\u212A', 'powerſhell',
    'cmd', 'exe', 'foo', 'bar', 'baz', 'lazy', 'ta', 'on', 'tmp', 'payload', 'ps1', 'powershell', '-enc', '1', '7'];

  it('never drops a value that RE2 matches (differential, 40,000 cases per mode)', () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let checked = 0;
    for (const pattern of PATTERNS) {
      for (const caseSensitive of [true, false]) {
        const re = RE2JS.compile(pattern, caseSensitive ? 0 : RE2JS.CASE_INSENSITIVE);
        const check = literalPrecheck(pattern, caseSensitive);
        if (!check) continue;
        for (let n = 0; n < 1600; n++) {
          const parts = Array.from({ length: 1 + Math.floor(random() * 8) }, () => ALPHABET[Math.floor(random() * ALPHABET.length)]);
          const value = parts.join('');
          if (re.test(value)) {
            checked += 1;
            if (!check(value)) throw new Error(`pre-check drops ${JSON.stringify(value)}, which /${pattern}/${caseSensitive ? '' : 'i'} matches`);
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(200);
  });
});
