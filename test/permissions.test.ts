import { isPlainSedScript } from '../lib/command-escapes';
import {
  decide,
  FILE_EDIT_TOOLS,
  parsePattern,
  PatternError,
  PERMISSION_MODES,
  READ_ONLY_TOOLS,
  sessionPatternFor,
  splitBashStages,
  validatePatterns,
  type Decision,
  type PermissionMode,
  type PermissionRules,
  type ToolPattern,
} from '../lib/permissions';

type Behavior = Decision['behavior'];
const NBSP = '\u00a0';

const rules = (over: Partial<PermissionRules> = {}): PermissionRules => ({ allowed: [], denied: [], mode: 'acceptEdits', ...over });
const bash = (r: PermissionRules, command?: string) => decide(r, { name: 'Bash', command });

describe('parsePattern accepts the three shapes', () => {
  it.each<[string, ToolPattern]>([
    ['Read', { kind: 'tool', name: 'Read' }],
    ['Bash', { kind: 'tool', name: 'Bash' }],
    ['WebFetch', { kind: 'tool', name: 'WebFetch' }],
    ['AskUserQuestion', { kind: 'tool', name: 'AskUserQuestion' }],
    ['Custom_Tool2', { kind: 'tool', name: 'Custom_Tool2' }],
    ['Bash(git:*)', { kind: 'bash-prefix', prefix: 'git' }],
    ['Bash(npm install:*)', { kind: 'bash-prefix', prefix: 'npm install' }],
    ['Bash(kubectl get:*)', { kind: 'bash-prefix', prefix: 'kubectl get' }],
    ['Bash(  npm   install :*)', { kind: 'bash-prefix', prefix: 'npm install' }],
    ['Bash(git\tlog:*)', { kind: 'bash-prefix', prefix: 'git log' }],
    ['Bash(docker run img:tag:*)', { kind: 'bash-prefix', prefix: 'docker run img:tag' }],
    ['Bash(echo $HOME:*)', { kind: 'bash-prefix', prefix: 'echo $HOME' }],
    ['mcp__virustotal', { kind: 'mcp', server: 'virustotal' }],
    ['mcp__virustotal__upload_file', { kind: 'mcp', server: 'virustotal', tool: 'upload_file' }],
    ['mcp__threat-intel_v2__get__thing', { kind: 'mcp', server: 'threat-intel_v2', tool: 'get__thing' }],
  ])('%j', (pattern, expected) => {
    expect(parsePattern(pattern)).toEqual(expected);
  });
});

describe('parsePattern rejects malformed patterns with a message naming the problem', () => {
  it.each<[string, RegExp]>([
    ['', /empty or blank/],
    ['   ', /empty or blank/],
    ['\t\n', /empty or blank/],
    ['Bash(git)', /only scoped form is Bash\(prefix:\*\)/],
    ['Bash(git:*', /only scoped form/],
    ['Bash(*)', /only scoped form/],
    ['Bash()', /only scoped form/],
    ['Bash(git:*) ', /only scoped form/],
    ['Bash(git:*)x', /only scoped form/],
    ['Bash(:*)', /prefix in Bash\(prefix:\*\) is empty/],
    ['Bash(   :*)', /prefix in Bash\(prefix:\*\) is empty/],
    ['Bash(git:*:*)', /"\*"/],
    ['Bash(ls *.txt:*)', /"\*"/],
    ['Bash(ls; rm:*)', /shell operators/],
    ['Bash(ls && rm:*)', /shell operators/],
    ['Bash(ls\nrm:*)', /shell operators/],
    ['Bash(echo "hi":*)', /quotes/],
    ['Bash(\\rm:*)', /backslashes/],
    [`Bash(rm${NBSP}-rf:*)`, /invisible/],
    ['Bash(rm\u200b:*)', /invisible/],
    [' Read', /letters, digits and underscores/],
    ['Read ', /letters, digits and underscores/],
    ['Re-ad', /letters, digits and underscores/],
    ['Réad', /letters, digits and underscores/],
    ['Read*', /letters, digits and underscores/],
    ['bash(git:*)', /only Bash takes a scope/],
    ['Read(/etc/*)', /only Bash takes a scope/],
    ['Bash (git:*)', /only Bash takes a scope/],
    ['mcp__', /mcp__<server> or mcp__<server>__<tool>/],
    ['mcp____tool', /mcp__<server>/],
    ['mcp__vt__', /mcp__<server>/],
    ['mcp___vt', /mcp__<server>/],
    ['mcp__vt_', /mcp__<server>/],
    ['mcp__v.t', /mcp__<server>/],
    ['mcp__vt__scan file', /mcp__<server>/],
    ['x'.repeat(513), /longer than 512/],
  ])('%j', (pattern, message) => {
    const err = (() => {
      try {
        parsePattern(pattern);
      } catch (e) {
        return e;
      }
      throw new Error('expected a PatternError');
    })();
    expect(err).toBeInstanceOf(PatternError);
    expect((err as PatternError).pattern).toBe(pattern);
    expect((err as PatternError).name).toBe('PatternError');
    expect((err as PatternError).message).toContain(JSON.stringify(pattern));
    expect((err as PatternError).message).toMatch(message);
  });
});

describe('validatePatterns', () => {
  it.each<[string, unknown, RegExp[]]>([
    ['empty list', [], []],
    ['valid list', ['Read', 'Bash(git:*)', 'mcp__virustotal', 'mcp__virustotal__upload_file'], []],
    ['not an array', 'Read', [/must be an array/]],
    ['undefined', undefined, [/must be an array/]],
    ['object', { 0: 'Read' }, [/must be an array/]],
    ['non-string entries', ['Read', 3, null], [/#1 is not a string/, /#2 is not a string/]],
    ['one message per bad pattern', ['Read', '', 'Bash(git)', 'Write'], [/""/, /"Bash\(git\)"/]],
  ])('%s', (_label, input, expected) => {
    const messages = validatePatterns(input);
    expect(messages).toHaveLength(expected.length);
    expected.forEach((re, i) => expect(messages[i]).toMatch(re));
  });
});

describe('splitBashStages', () => {
  it.each<[string, string[], boolean]>([
    // plain commands, whitespace and empties
    ['git status', ['git status'], false],
    ['  git   status  ', ['git status'], false],
    ['git\tstatus', ['git status'], false],
    ['', [''], false],
    ['   \t ', [''], false],
    [';;;', [''], false],
    ['ls;', ['ls'], false],
    // stage operators
    ['git status && rm -rf /', ['git status', 'rm -rf /'], false],
    ['git status || rm -rf /', ['git status', 'rm -rf /'], false],
    ['git status; rm -rf /', ['git status', 'rm -rf /'], false],
    ['git status;rm -rf /', ['git status', 'rm -rf /'], false],
    ['git status\nrm -rf /', ['git status', 'rm -rf /'], false],
    ['git status | rm -rf /', ['git status', 'rm -rf /'], false],
    ['git status |& rm -rf /', ['git status', 'rm -rf /'], false],
    ['git status & rm -rf /', ['git status', 'rm -rf /'], false],
    ['sleep 5 &', ['sleep 5'], false],
    ['a&&b||c|d;e&f', ['a', 'b', 'c', 'd', 'e', 'f'], false],
    // quoting and escaping keep separators literal
    ['echo "a; rm -rf /"', ["echo 'a; rm -rf /'"], false],
    ["echo 'a && rm -rf /'", ["echo 'a && rm -rf /'"], false],
    ['echo a\\; rm -rf /', ['echo a; rm -rf /'], false],
    ['echo "line1\nline2"', ["echo 'line1\nline2'"], false],
    ['echo "a\\"b; c"', ["echo 'a\"b; c'"], false],
    ['echo "" x', ["echo '' x"], false],
    ['"rm" -rf /', ['rm -rf /'], false],
    ["r'm' -rf /", ['rm -rf /'], false],
    ['\\rm -rf /', ['rm -rf /'], false],
    ["$'\\x72\\x6d' -rf /", ['rm -rf /'], false],
    ["$'\\162m' -rf /", ['rm -rf /'], false],
    ['$"rm" -rf /', ['rm -rf /'], false],
    ['r\\\nm -rf /', ['rm -rf /'], false],
    // comments end at the newline, and only start at a word
    ['ls # ; rm -rf /', ['ls'], false],
    ['ls #x\nrm -rf /', ['ls', 'rm -rf /'], false],
    ['echo a#b', ['echo a#b'], false],
    // redirections stay with their command
    ['ls > out.txt', ['ls > out.txt'], false],
    ['ls>out.txt', ['ls > out.txt'], false],
    ['ls >> out.txt', ['ls >> out.txt'], false],
    ['sort < in.txt', ['sort < in.txt'], false],
    ['cat a 2>&1 | grep x', ['cat a 2>&1', 'grep x'], false],
    ['echo x &> f', ['echo x &> f'], false],
    ['echo x &>> f', ['echo x &>> f'], false],
    ['echo x >& f', ['echo x >& f'], false],
    ['echo x 1>&2', ['echo x 1>&2'], false],
    ['exec 3<&-', ['exec 3<&-'], false],
    ['echo x >| f', ['echo x >| f'], false],
    ['cat <<< "a; b"', ["cat <<< 'a; b'"], false],
    ['ls &>/dev/null && rm -rf /', ['ls &> /dev/null', 'rm -rf /'], false],
    ['>/dev/null rm -rf /', ['rm -rf / > /dev/null'], false],
    ['2>/dev/null rm -rf /', ['rm -rf / 2> /dev/null'], false],
    ['git >/dev/null push --force', ['git push --force > /dev/null'], false],
    ['"2">x echo', ['2 echo > x'], false],
    // wrappers and assignments
    ['nohup timeout 30 DEBUG=1 npm test', ['npm test'], false],
    ['timeout 30 kubectl delete pod xyz', ['kubectl delete pod xyz'], false],
    ['timeout -s KILL 5s rm -rf /', ['rm -rf /'], false],
    ['timeout --signal=TERM -k 2 1.5m rm x', ['rm x'], false],
    ['timeout --preserve-status -- 10 rm x', ['rm x'], false],
    ['timeout 10 -- rm x', ['-- rm x'], false],
    ['timeout rm -rf /', ['timeout rm -rf /'], false],
    ['timeout 5', ['timeout 5'], false],
    ['time ls', ['ls'], false],
    ['time -p ls', ['ls'], false],
    ['nice -n 10 make', ['make'], false],
    ['nice -n10 make', ['make'], false],
    ['nice -5 make', ['make'], false],
    ['nice --adjustment=5 make', ['make'], false],
    ['nohup -- make', ['make'], false],
    ['stdbuf -oL -e 0 grep x', ['grep x'], false],
    ['stdbuf --output=L grep x', ['grep x'], false],
    ['xargs rm -rf', ['rm -rf'], false],
    ['find . | xargs rm -rf', ['find .', 'rm -rf'], false],
    ['xargs -0 rm', ['xargs -0 rm'], false],
    ['xargs', ['xargs'], false],
    ['nohup', ['nohup'], false],
    ['A=1 B="x y" C+=z make', ['make'], false],
    ['FOO=bar', [''], false],
    ['"A"=1 make', ['A=1 make'], false],
    ['nice nohup stdbuf -oL time timeout 5 xargs rm x', ['rm x'], false],
    ['env rm -rf /', ['env rm -rf /'], false],
    ['sudo rm -rf /', ['sudo rm -rf /'], false],
    ['/bin/rm -rf /', ['/bin/rm -rf /'], false],
    ['constructor x', ['constructor x'], false],
    ['__proto__ x', ['__proto__ x'], false],
    // reserved words introduce the command after them
    ['if true; then rm -rf /; fi', ['true', 'rm -rf /', 'fi'], false],
    ['for f in *; do rm "$f"; done', ['for f in *', 'rm $f', 'done'], false],
    ['! rm -rf /', ['rm -rf /'], false],
    ['"if" x', ['if x'], false],
    // parameter expansion is not dangerous; substitution and grouping are
    ['echo ${HOME} $USER', ['echo ${HOME} $USER'], false],
    ["echo '$(rm -rf /)'", ["echo '$(rm -rf /)'"], false],
    ["echo '`rm -rf /`'", ["echo '`rm -rf /`'"], false],
    ['echo \\`date\\`', ['echo `date`'], false],
    ['find . \\( -name a \\)', ['find . ( -name a )'], false],
    ['cat $(rm file)', ['cat $(rm file)'], true],
    ['echo "$(rm -rf /)"', ["echo '$(rm -rf /)'"], true],
    ['echo `rm -rf /`', ['echo `rm -rf /`'], true],
    ['echo "`date`"', ['echo `date`'], true],
    ['echo $((1+2))', ['echo $((1+2))'], true],
    ['diff <(ls a) <(ls b)', ['diff <(ls a) <(ls b)'], true],
    ['tee >(rm x) > log', ['tee >(rm x) > log'], true],
    ['(rm -rf /)', ['(rm -rf /)'], true],
    ['{ rm -rf /; }', ['{ rm -rf /', '}'], true],
    ['{rm,-rf,/}', ['{rm,-rf,/}'], true],
    ['X=$(rm -rf /) ls', ['X=$(rm -rf /) ls'], true],
    ['X=$(a) Y=1 ls', ['X=$(a) Y=1 ls'], true],
    ['X=`a` ls', ['X=`a` ls'], true],
    ['X="$(a)" ls', ['X=$(a) ls'], true],
    ["X='$(a)' ls", ['ls'], false],
    ['echo $(a; rm -rf /)', ['echo $(a', 'rm -rf /)'], true],
    // unterminated quotes and unmodelled syntax fail closed
    ['echo "unterminated', ['echo'], true],
    ["echo 'unterminated", ['echo'], true],
    ["echo $'unterminated", ['echo'], true],
    ['cat <<EOF\nhello\nEOF', ['cat << EOF', 'hello', 'EOF'], true],
    ['case x in a) ls;; esac', ['case x in a) ls', 'esac'], true],
    ['function f { ls; }', ['function f { ls', '}'], true],
    // unicode: no folding to ASCII; invisible or non-ASCII blanks make the command unverifiable
    ['ｒｍ -rf /', ['ｒｍ -rf /'], false],
    [`git${NBSP}status`, [`git${NBSP}status`], true],
    [`rm -rf /${NBSP}`, [`rm -rf /${NBSP}`], true],
    ['git status\u200b', ['git status\u200b'], true],
    ['git status\r\nrm -rf /', ['git status\r', 'rm -rf /'], true],
    ['ls\u202e', ['ls\u202e'], true],
  ])('%j', (command, stages, dangerous) => {
    expect(splitBashStages(command)).toEqual({ stages, dangerous });
  });
});

describe('decide: a deny list over an open Bash (allowed: Bash)', () => {
  const open = rules({ allowed: ['Bash'], denied: ['Bash(rm:*)', 'Bash(mv:*)', 'Bash(kubectl delete:*)'] });
  it.each<[string, Behavior]>([
    ['rm -rf /', 'deny'],
    ['rm', 'deny'],
    ['ls && rm -rf /', 'deny'],
    ['ls || rm -rf /', 'deny'],
    ['ls; rm -rf /', 'deny'],
    ['ls\nrm -rf /', 'deny'],
    ['ls | rm -rf /', 'deny'],
    ['ls |& rm -rf /', 'deny'],
    ['ls & rm -rf /', 'deny'],
    ['ls &>/dev/null && rm -rf /', 'deny'],
    ['timeout 30 kubectl delete pod xyz', 'deny'],
    ['nohup timeout 30 DEBUG=1 rm -rf /', 'deny'],
    ['nice -n 5 stdbuf -oL mv a b', 'deny'],
    ['find . | xargs rm -rf', 'deny'],
    ['"rm" -rf /', 'deny'],
    ['\\rm -rf /', 'deny'],
    ["$'\\x72m' -rf /", 'deny'],
    ['r\\\nm -rf /', 'deny'],
    ['>/dev/null rm -rf /', 'deny'],
    ['rm -rf / 2>&1', 'deny'],
    ['if true; then rm -rf /; fi', 'deny'],
    ['for f in *; do rm "$f"; done', 'deny'],
    ['! rm x', 'deny'],
    ['ls; rm -rf / ; echo "unterminated', 'deny'],
    ['rm -rf / # just cleaning', 'deny'],
    ["cat <<EOF\nit's\nEOF\nrm -rf /", 'deny'],
    ['cat <<EOF\nrm -rf /\nEOF', 'deny'],
    ['case x in a) rm -rf /;; esac', 'deny'],
    ['function f { rm -rf /; }', 'deny'],
    [`rm -rf /${NBSP}`, 'deny'],
    ['kubectl get pods', 'allow'],
    ['kubectl deletex', 'allow'],
    ['rmdir x', 'allow'],
    ['echo rm -rf /', 'allow'],
    ['echo "a; rm -rf /"', 'allow'],
    ['echo a\\; rm -rf /', 'allow'],
    ['ls # ; rm -rf /', 'allow'],
    ['ls > out.txt', 'allow'],
    ['xargs -0 rm', 'allow'],
    ['env rm -rf /', 'allow'],
    ['/bin/rm -rf /', 'allow'],
    ['ｒｍ -rf /', 'allow'],
    [`rm${NBSP}-rf /`, 'ask'],
    // dangerous constructs are neither denied nor approved: they take the permission_mode path
    ['cat $(rm file)', 'ask'],
    ['rm -rf $(pwd)', 'ask'],
    ['ls; rm `pwd`', 'ask'],
    ['echo "$(rm -rf /)"', 'ask'],
    ['echo `rm -rf /`', 'ask'],
    ['cat <(rm x)', 'ask'],
    ['(rm -rf /)', 'ask'],
    ['{ rm -rf /; }', 'ask'],
    ['echo "unterminated', 'ask'],
  ])('%j -> %s', (command, behavior) => {
    expect(bash(open, command).behavior).toBe(behavior);
  });

  it('names the deny pattern that fired', () => {
    expect(bash(open, 'timeout 30 kubectl delete pod xyz')).toEqual({ behavior: 'deny', reason: 'denied by "Bash(kubectl delete:*)"' });
  });

  it('says why a dangerous command was not decided by the lists', () => {
    expect(bash(open, 'cat $(rm file)').reason).toMatch(/acceptEdits.*cannot check/);
  });
});

describe('decide: bare Bash in allowed_tools', () => {
  it.each<[string, PermissionRules, string, Behavior]>([
    ['covers dangerous commands when no Bash prefix is denied', rules({ allowed: ['Bash'] }), 'cat $(rm file)', 'allow'],
    ['covers the empty command', rules({ allowed: ['Bash'] }), '', 'allow'],
    ['covers unicode-spaced commands without prefix denies', rules({ allowed: ['Bash'] }), `git${NBSP}status`, 'allow'],
    ['steps aside for dangerous commands when a Bash prefix is denied', rules({ allowed: ['Bash'], denied: ['Bash(rm:*)'] }), 'cat $(rm file)', 'ask'],
    ['still covers safe commands beside a prefix deny', rules({ allowed: ['Bash'], denied: ['Bash(rm:*)'] }), 'cat a | grep x', 'allow'],
    ['is unaffected by a bare-tool deny of another tool', rules({ allowed: ['Bash'], denied: ['Write'] }), 'cat $(x)', 'allow'],
    ['loses to bypass-free deny of bare Bash', rules({ allowed: ['Bash'], denied: ['Bash'] }), 'ls', 'deny'],
  ])('%s', (_label, r, command, behavior) => {
    expect(bash(r, command).behavior).toBe(behavior);
  });

  it.each(['ls', '', 'cat $(x)', '(a)', 'echo "unterminated'])('bare Bash deny blocks %j', (command) => {
    expect(bash(rules({ denied: ['Bash'], mode: 'bypassPermissions' }), command)).toEqual({ behavior: 'deny', reason: 'denied by "Bash"' });
  });

  it('bare Bash deny also blocks a call with no command input', () => {
    expect(bash(rules({ denied: ['Bash'] })).behavior).toBe('deny');
  });
});

describe('decide: allow needs every stage covered (acceptEdits)', () => {
  const scoped = rules({ allowed: ['Bash(git:*)', 'Bash(npm install:*)', 'Bash(kubectl get:*)', 'Bash(grep:*)', 'Bash(ls:*)'] });
  it.each<[string, Behavior]>([
    ['git', 'allow'],
    ['git status', 'allow'],
    ['git log | grep fix', 'allow'],
    ['git status && git log', 'allow'],
    ['  git   status  ', 'allow'],
    ['git\tstatus', 'allow'],
    ['npm install', 'allow'],
    ['npm install lodash', 'allow'],
    ['kubectl get pods -A', 'allow'],
    ['timeout 30 git fetch', 'allow'],
    ['nohup timeout 30 DEBUG=1 npm install', 'allow'],
    ['LANG=C git log', 'allow'],
    // The pager is a command git runs: an assignment that can change what runs is not covered by Bash(git:*).
    ['GIT_PAGER=cat git log', 'ask'],
    ['LD_PRELOAD=/workspace/x.so git status', 'ask'],
    ['PATH=/workspace/bin:$PATH ls', 'ask'],
    ['ls > out.txt', 'allow'],
    ['ls>out.txt', 'allow'],
    ['git status 2>&1 | grep x', 'allow'],
    ['2>/dev/null git status', 'allow'],
    ['git status # ; rm -rf /', 'allow'],
    ['ls; ', 'allow'],
    ['gitk', 'ask'],
    ['github-cli x', 'ask'],
    ['npm installer', 'ask'],
    ['npm i lodash', 'ask'],
    ['npm test', 'ask'],
    ['kubectl delete pod x', 'ask'],
    ['kubectl', 'ask'],
    ['git status && rm -rf /', 'ask'],
    ['git status; rm -rf /', 'ask'],
    ['git status\nrm -rf /', 'ask'],
    ['git status || rm -rf /', 'ask'],
    ['git status | sh', 'ask'],
    ['git status |& sh', 'ask'],
    ['git status & rm -rf /', 'ask'],
    ['git status\r\nls', 'ask'],
    ['git log $(rm -rf /)', 'ask'],
    ['git log `rm -rf /`', 'ask'],
    ['git log "$(rm -rf /)"', 'ask'],
    ['git diff <(rm x)', 'ask'],
    ['(git status)', 'ask'],
    ['{ git status; }', 'ask'],
    ['git commit -m "unterminated', 'ask'],
    ['FOO=1; git status', 'ask'],
    ['xargs -0 git', 'ask'],
    ['env git status', 'ask'],
    ['"git status"', 'ask'],
    ['ｇｉｔ status', 'ask'],
    [`git${NBSP}status`, 'ask'],
    [`git status${NBSP}`, 'ask'],
    ['git status\u200b', 'ask'],
    ['', 'ask'],
    ['   ', 'ask'],
  ])('%j -> %s', (command, behavior) => {
    expect(bash(scoped, command).behavior).toBe(behavior);
  });

  it('a quoted `$(` is text, not substitution', () => {
    expect(bash(scoped, "git commit -m '$(not run)'").behavior).toBe('allow');
  });

  it('a missing command falls through to the mode', () => {
    expect(bash(scoped).behavior).toBe('ask');
    expect(bash({ ...scoped, mode: 'bypassPermissions' }).behavior).toBe('allow');
  });

  it('names every allow pattern that covered a stage', () => {
    expect(bash(scoped, 'git log | grep fix')).toEqual({ behavior: 'allow', reason: 'allowed by "Bash(git:*)", "Bash(grep:*)"' });
  });
});

describe('decide: the default read-only profile', () => {
  const readOnly = rules({
    allowed: ['Read', 'Bash(cat:*)', 'Bash(head:*)', 'Bash(tail:*)', 'Bash(less:*)', 'Bash(grep:*)', 'Bash(sed:*)', 'Bash(awk:*)', 'Bash(jq:*)', 'Bash(ls:*)', 'Bash(find:*)', 'Bash(wc:*)'],
  });
  it.each<[string, string | undefined, Behavior]>([
    ['Read', undefined, 'allow'],
    ['Write', undefined, 'allow'],
    ['Edit', undefined, 'allow'],
    ['Grep', undefined, 'ask'],
    ['WebFetch', undefined, 'ask'],
    ['Bash', 'cat /etc/hosts | grep local | wc -l', 'allow'],
    ['Bash', "jq '.a | .b' f.json", 'allow'],
    ['Bash', "awk '{print $1; exit}' f", 'allow'],
    ['Bash', 'find . -name "*.log" | head', 'allow'],
    ['Bash', 'cat $(rm file)', 'ask'],
    ['Bash', 'find . | xargs rm -rf', 'ask'],
    ['Bash', 'cat f | sh', 'ask'],
    ['Bash', 'cat f; curl evil', 'ask'],
    // What these commands can run besides themselves is not covered by their prefix rule: it asks.
    ['Bash', 'find . -name "*.sh" -exec sh -c id \\;', 'ask'],
    ['Bash', 'find . -execdir id \\;', 'ask'],
    ['Bash', 'find /tmp -delete', 'ask'],
    ['Bash', 'find . -fprint /workspace/out', 'ask'],
    ['Bash', 'find . -type f -newer x -print0 | wc -c', 'allow'],
    ['Bash', `awk 'BEGIN{system("id")}'`, 'ask'],
    ['Bash', `awk '{print | "sh"}' f`, 'ask'],
    ['Bash', `awk '{print > "/workspace/x"}' f`, 'ask'],
    ['Bash', 'awk -f prog.awk f', 'ask'],
    ['Bash', `awk '@load "filefuncs"; {print}' f`, 'ask'],
    ['Bash', "awk -F: -v n=2 '{print $n}' /etc/passwd", 'allow'],
    ['Bash', "sed -n '1,5p' f", 'allow'],
    ['Bash', "sed 's/secret/[redacted]/g' f | head", 'allow'],
    ['Bash', "sed -E -e 's|a|b|2' -e '/^#/d' f", 'allow'],
    ['Bash', "sed '1e id' f", 'ask'],
    ['Bash', "sed 'e id' f", 'ask'],
    ['Bash', "sed 's/x/id/e' f", 'ask'],
    ['Bash', "sed 's/x/y/w /workspace/out' f", 'ask'],
    ['Bash', "sed -i 's/a/b/' f", 'ask'],
    ['Bash', "sed -ni 'p' f", 'ask'],
    ['Bash', "sed --in-place=.bak 's/a/b/' f", 'ask'],
    ['Bash', 'sed -f script.sed f', 'ask'],
    ['Bash', "sed ':y/;e id;/x/p' f", 'ask'],
    ['Bash', "sed --sandbox 'w x' f", 'allow'],
    ['Bash', "less '+!id' f", 'ask'],
    ['Bash', 'less -N f', 'allow'],
    ['Bash', "LESSOPEN='|id %s' less f", 'ask'],
    ['Bash', 'LC_ALL=C grep -c x f', 'allow'],
    // xargs adds arguments from its input that the check cannot see.
    ['Bash', 'echo "-exec id ;" | xargs find .', 'ask'],
    ['Bash', 'cat args.txt | xargs sed', 'ask'],
    ['Bash', 'cat names.txt | xargs cat', 'allow'],
    ['Bash', 'less -k/tmp/keys f', 'ask'],
    ['Bash', 'less -sk/tmp/keys f', 'ask'],
    ['Bash', 'less -ofile f', 'ask'],
    ['Bash', 'less --log-file=x f', 'ask'],
  ])('%s %j -> %s', (name, command, behavior) => {
    expect(decide(readOnly, { name, command }).behavior).toBe(behavior);
  });

  it('still lets deny rules see such stages', () => {
    expect(decide({ ...readOnly, denied: ['Bash(find:*)'] }, { name: 'Bash', command: 'find . -exec id \\;' }).behavior).toBe('deny');
  });
});

describe('isPlainSedScript', () => {
  it.each<[string, boolean]>([
    ['p', true], ['1,5p', true], ['$d', true], ['/^#/d', true], ['/x/I,/y/p', true], ['0~2d', true], ['/a/!d', true],
    ['s/a/b/', true], ['s|a|b|gI', true], ['s/a\\/b/c/2', true], ['s/a/b/;s/c/d/g', true], ['p\nq', true], ['', true], ['1!G;h;$!d', true],
    ['e id', false], ['1e id', false], ['s/a/b/e', false], ['s/a/b/w out', false], ['w out', false], ['r /etc/passwd', false],
    ['a text', false], ['i\\\ntext', false], [':x;bx', false], ['{p}', false], ['s a b ', false], ['sxaxbx', false], ['s/a/b', false],
    ['q5', false], ['y/ab/cd/', false], ['W out', false],
    // sed reads a bracket expression in a regex as one piece, delimiter included: so does the scan.
    ['/[/]/p', true], ['s/[/]/x/', true], ['s|[|]|x|g', true], ['s/[]/]/x/', true],
    ['s/[/]/;/e;/x;/p/p', false], ['s/[/]/p;/e', false],
    // What the scan cannot be sure it splits as sed does is refused.
    ['s/[\\/]/x/', false], ['s/a\\c/b/', false], ['s/[[:alpha:]/]/x/', false], ['s/[/x/', false],
  ])('%j -> %s', (script, plain) => {
    expect(isPlainSedScript(script)).toBe(plain);
  });
});

describe('decide: deny wins', () => {
  it.each<[string, PermissionRules, string, string | undefined]>([
    ['bare tool in both lists', rules({ allowed: ['Write'], denied: ['Write'] }), 'Write', undefined],
    ['prefix allow vs narrower prefix deny', rules({ allowed: ['Bash(git:*)'], denied: ['Bash(git push:*)'] }), 'Bash', 'git push --force origin main'],
    ['prefix deny on one stage of an allowed pipeline', rules({ allowed: ['Bash(git:*)', 'Bash(rm:*)'], denied: ['Bash(rm:*)'] }), 'Bash', 'git status && rm x'],
    ['mcp server allowed, one tool denied', rules({ allowed: ['mcp__virustotal'], denied: ['mcp__virustotal__upload_file'] }), 'mcp__virustotal__upload_file', undefined],
    ['bypassPermissions still honours denies', rules({ denied: ['WebFetch'], mode: 'bypassPermissions' }), 'WebFetch', undefined],
    ['allowAll still honours denies', rules({ denied: ['Edit'], allowAll: true }), 'Edit', undefined],
  ])('%s', (_label, r, name, command) => {
    expect(decide(r, { name, command }).behavior).toBe('deny');
  });

  it('a narrower deny leaves the rest of the allow intact', () => {
    const r = rules({ allowed: ['Bash(git:*)'], denied: ['Bash(git push:*)'] });
    expect(bash(r, 'git pushx').behavior).toBe('allow');
    expect(bash(r, 'git status').behavior).toBe('allow');
  });
});

describe('decide: env and other command runners are literal commands', () => {
  it.each<[string[], string, Behavior]>([
    [['Bash(rm:*)'], 'env rm -rf /', 'ask'],
    [['Bash(env:*)'], 'env rm -rf /', 'deny'],
    [['Bash(env:*)'], 'FOO=1 env', 'deny'],
    [['Bash(sudo:*)'], 'sudo rm -rf /', 'deny'],
    [['Bash(xargs:*)'], 'find . | xargs -0 rm', 'deny'],
    [['Bash(xargs:*)'], 'find . | xargs rm', 'ask'],
    [['Bash(timeout:*)'], 'timeout 5 rm x', 'ask'],
    [['Bash(timeout:*)'], 'timeout rm x', 'deny'],
  ])('deny %j on %j -> %s', (denied, command, behavior) => {
    expect(bash(rules({ denied }), command).behavior).toBe(behavior);
  });
});

describe('decide: MCP patterns', () => {
  const r = rules({ allowed: ['mcp__virustotal', 'mcp__jira__get_issue'], denied: ['mcp__virustotal__upload_file', 'mcp__shodan'] });
  it.each<[string, Behavior]>([
    ['mcp__virustotal__lookup_hash', 'allow'],
    ['mcp__virustotal__upload_file', 'deny'],
    ['mcp__virustotal__upload_file_v2', 'allow'],
    ['mcp__virustotalx__lookup_hash', 'ask'],
    ['mcp__virustotal_extra__lookup', 'ask'],
    ['mcp__VirusTotal__lookup_hash', 'ask'],
    ['mcp__jira__get_issue', 'allow'],
    ['mcp__jira__create_issue', 'ask'],
    ['mcp__shodan__host', 'deny'],
    ['mcp__shodanx__host', 'ask'],
  ])('%s -> %s', (name, behavior) => {
    expect(decide(r, { name }).behavior).toBe(behavior);
  });

  it('a short server name does not cover a longer one', () => {
    expect(decide(rules({ allowed: ['mcp__vt'], mode: 'plan' }), { name: 'mcp__vtx__scan' }).behavior).toBe('deny');
    expect(decide(rules({ allowed: ['mcp__vt'], mode: 'plan' }), { name: 'mcp__vt__scan' }).behavior).toBe('allow');
  });
});

describe('decide: deny over allow across mcp__server and mcp__server__tool', () => {
  it.each<[allowed: string[], denied: string[], mode: PermissionMode, name: string, behavior: Behavior]>([
    [['mcp__vt__scan'], ['mcp__vt'], 'acceptEdits', 'mcp__vt__scan', 'deny'],
    [['mcp__vt'], ['mcp__vt'], 'bypassPermissions', 'mcp__vt__scan', 'deny'],
    [['mcp__vt__scan'], ['mcp__vt__scan'], 'bypassPermissions', 'mcp__vt__scan', 'deny'],
    [['mcp__vt'], ['mcp__vt__upload'], 'bypassPermissions', 'mcp__vt__upload', 'deny'],
    [['mcp__vt'], ['mcp__vt__upload'], 'plan', 'mcp__vt__scan', 'allow'],
    [['mcp__vt'], ['mcp__vt__upload'], 'acceptEdits', 'mcp__vt__upload_all', 'allow'],
    [[], ['mcp__vt__scan'], 'bypassPermissions', 'mcp__vt__scan_all', 'allow'],
    [['mcp__vt__scan'], [], 'plan', 'mcp__vt__lookup', 'deny'],
    [['mcp__vt__scan'], [], 'acceptEdits', 'mcp__vt__lookup', 'ask'],
    [['mcp__vt'], ['mcp__jira'], 'acceptEdits', 'mcp__vt__scan', 'allow'],
    [['mcp__vt'], ['mcp__jira'], 'bypassPermissions', 'mcp__jira__create', 'deny'],
    [['mcp__vt'], [], 'acceptEdits', 'mcp__vt_x__scan', 'ask'],
    [['mcp__vt'], [], 'acceptEdits', 'mcp__vt-x__scan', 'ask'],
    [['mcp__threat-intel_v2'], ['mcp__threat-intel_v2__get'], 'acceptEdits', 'mcp__threat-intel_v2__get__thing', 'allow'],
    [['mcp__threat-intel_v2__get__thing'], ['mcp__threat-intel_v2__get'], 'plan', 'mcp__threat-intel_v2__get', 'deny'],
    [['Bash', 'Read'], [], 'acceptEdits', 'mcp__Bash__run', 'ask'],
    [['mcp__Read'], [], 'acceptEdits', 'Read', 'ask'],
  ])('allowed %j, denied %j, %s: %s -> %s', (allowed, denied, mode, name, behavior) => {
    expect(decide(rules({ allowed, denied, mode }), { name }).behavior).toBe(behavior);
  });

  it('the D&R allowAll exception still honours an MCP deny', () => {
    const r = rules({ denied: ['mcp__vt'], allowAll: true });
    expect(decide(r, { name: 'mcp__vt__scan' })).toEqual({ behavior: 'deny', reason: 'denied by "mcp__vt"' });
    expect(decide(r, { name: 'mcp__jira__get' }).behavior).toBe('allow');
  });
});

describe('decide: bare names are exact and case-sensitive', () => {
  it.each<[string, string, Behavior]>([
    ['Read', 'Read', 'allow'],
    ['read', 'Read', 'ask'],
    ['Read', 'ReadFile', 'ask'],
    ['WebFetch', 'WebFetch', 'allow'],
    ['Bash', 'bash', 'ask'],
  ])('allowed %j, call %j -> %s', (allowed, name, behavior) => {
    expect(decide(rules({ allowed: [allowed] }), { name }).behavior).toBe(behavior);
  });

  it('Bash(prefix:*) never applies to other tools', () => {
    expect(decide(rules({ allowed: ['Bash(cat:*)'] }), { name: 'Read', command: 'cat x' }).behavior).toBe('ask');
    expect(decide(rules({ denied: ['Bash(cat:*)'], mode: 'bypassPermissions' }), { name: 'Read', command: 'cat x' }).behavior).toBe('allow');
  });
});

describe('decide: permission_mode fallback when no list decides', () => {
  it.each<[PermissionMode, string, Behavior]>([
    ['bypassPermissions', 'Bash', 'allow'],
    ['bypassPermissions', 'Write', 'allow'],
    ['bypassPermissions', 'WebFetch', 'allow'],
    ['bypassPermissions', 'mcp__x__y', 'allow'],
    ['acceptEdits', 'Write', 'allow'],
    ['acceptEdits', 'Edit', 'allow'],
    ['acceptEdits', 'NotebookEdit', 'allow'],
    ['acceptEdits', 'MultiEdit', 'allow'],
    ['acceptEdits', 'Read', 'ask'],
    ['acceptEdits', 'Bash', 'ask'],
    ['acceptEdits', 'WebFetch', 'ask'],
    ['acceptEdits', 'Task', 'ask'],
    ['acceptEdits', 'mcp__x__y', 'ask'],
    ['plan', 'Read', 'allow'],
    ['plan', 'Glob', 'allow'],
    ['plan', 'Grep', 'allow'],
    ['plan', 'TodoWrite', 'allow'],
    ['plan', 'AskUserQuestion', 'allow'],
    ['plan', 'Write', 'deny'],
    ['plan', 'Edit', 'deny'],
    ['plan', 'Bash', 'deny'],
    ['plan', 'WebFetch', 'deny'],
    ['plan', 'WebSearch', 'deny'],
    ['plan', 'Task', 'deny'],
    ['plan', 'mcp__virustotal__lookup', 'deny'],
  ])('%s: %s -> %s', (mode, name, behavior) => {
    expect(decide(rules({ mode }), { name, command: 'ls' }).behavior).toBe(behavior);
  });

  it('plan mode names itself when it refuses', () => {
    expect(decide(rules({ mode: 'plan' }), { name: 'Write' }).reason).toMatch(/plan \(read-only\) mode.*Write/);
  });

  it('an explicit allow still approves a mutating tool in plan mode', () => {
    const r = rules({ mode: 'plan', allowed: ['Write', 'Bash(git:*)'] });
    expect(decide(r, { name: 'Write' }).behavior).toBe('allow');
    expect(bash(r, 'git commit -m x').behavior).toBe('allow');
    expect(bash(r, 'git commit -m x && rm -rf /').behavior).toBe('deny');
  });

  it('the mode lists are what the modes promise', () => {
    expect(PERMISSION_MODES).toEqual(['acceptEdits', 'plan', 'bypassPermissions']);
    expect([...FILE_EDIT_TOOLS].sort()).toEqual(['Edit', 'MultiEdit', 'NotebookEdit', 'Write']);
    for (const t of FILE_EDIT_TOOLS) expect(READ_ONLY_TOOLS).not.toContain(t);
    expect(READ_ONLY_TOOLS).not.toContain('Bash');
  });
});

describe('decide: the D&R allowAll exception', () => {
  it.each<[PermissionRules, string, string | undefined, Behavior]>([
    [rules({ allowAll: true }), 'Bash', 'rm -rf /tmp/x', 'allow'],
    [rules({ allowAll: true }), 'Bash', 'cat $(x)', 'allow'],
    [rules({ allowAll: true }), 'WebFetch', undefined, 'allow'],
    [rules({ allowAll: true, mode: 'plan' }), 'Write', undefined, 'allow'],
    [rules({ allowAll: true, denied: ['WebFetch'] }), 'WebFetch', undefined, 'deny'],
    [rules({ allowAll: true, denied: ['Bash(rm:*)'] }), 'Bash', 'ls && rm x', 'deny'],
    [rules({ allowAll: true, denied: ['Bash(rm:*)'] }), 'Bash', 'cat $(rm x)', 'ask'],
    [rules({ allowAll: false }), 'WebFetch', undefined, 'ask'],
  ])('%j %s %j -> %s', (r, name, command, behavior) => {
    expect(decide(r, { name, command }).behavior).toBe(behavior);
  });
});

describe('decide: malformed patterns at run time', () => {
  it('an unreadable deny pattern refuses every call, naming it', () => {
    const d = decide(rules({ denied: ['Bash(rm)'], allowed: ['Read'], mode: 'bypassPermissions' }), { name: 'Read' });
    expect(d.behavior).toBe('deny');
    expect(d.reason).toContain('"Bash(rm)"');
  });

  it.each(['', 'Bash(git)', 'Bash(*)', 'mcp__'])('an unreadable allow pattern %j approves nothing', (bad) => {
    expect(bash(rules({ allowed: [bad] }), 'git status').behavior).toBe('ask');
  });
});

describe('sessionPatternFor', () => {
  it.each<[string, string | undefined, string]>([
    ['Read', undefined, 'Read'],
    ['WebFetch', undefined, 'WebFetch'],
    ['mcp__virustotal__upload_file', undefined, 'mcp__virustotal__upload_file'],
    ['Bash', 'git status', 'Bash(git:*)'],
    ['Bash', '  git   push  ', 'Bash(git:*)'],
    ['Bash', 'nohup timeout 30 DEBUG=1 npm test', 'Bash(npm:*)'],
    ['Bash', 'git log | git show', 'Bash(git:*)'],
    ['Bash', 'cat $(ls)', 'Bash(cat:*)'],
    ['Bash', '"rm" x', 'Bash(rm:*)'],
    // stages running different commands: only the first stage's literal words
    ['Bash', 'git status && npm test', 'Bash(git status:*)'],
    ['Bash', 'ls -la /tmp | rm -rf /', 'Bash(ls -la /tmp:*)'],
    ['Bash', 'grep -rn "a b" src | head', 'Bash(grep -rn:*)'],
    // command runners: their name says nothing about what runs
    ['Bash', 'xargs -0 rm', 'Bash(xargs -0 rm:*)'],
    ['Bash', 'env FOO=1 make', 'Bash(env FOO=1 make:*)'],
    ['Bash', 'sh -c "rm -rf /"', 'Bash(sh -c:*)'],
    // nothing safe to remember
    ['Bash', '', ''],
    ['Bash', '   ', ''],
    ['Bash', '(cd x && make)', ''],
    ['Bash', '$(which python) x.py', ''],
    ['Bash', '$EDITOR x', ''],
    ['Bash', '{ ls; }', ''],
    ['Bash', 'FOO=1', ''],
    ['Bash', '"my tool" x', ''],
    ['Bash', `git${NBSP}status`, ''],
    ['Bash', '*.sh', ''],
    ['Bad Name', undefined, ''],
  ])('%s %j -> %j', (name, command, expected) => {
    expect(sessionPatternFor({ name, command })).toBe(expected);
  });

  it('a missing Bash command yields nothing', () => {
    expect(sessionPatternFor({ name: 'Bash' })).toBe('');
  });

  it.each(['git status', 'nohup timeout 30 npm test', 'git status && npm test', 'xargs -0 rm', 'mcp__virustotal__lookup'])(
    'the pattern for %j is valid and approves that call again', (command) => {
      const call = command.startsWith('mcp__') ? { name: command } : { name: 'Bash', command };
      const pattern = sessionPatternFor(call);
      expect(validatePatterns([pattern])).toEqual([]);
      const again = decide(rules({ allowed: [pattern] }), call);
      expect(again.behavior).toBe(command.includes('&&') ? 'ask' : 'allow');
    },
  );

  it('a mixed-command approval never covers the later stages', () => {
    const pattern = sessionPatternFor({ name: 'Bash', command: 'ls && rm -rf /' });
    expect(pattern).toBe('Bash(ls:*)');
    expect(bash(rules({ allowed: [pattern] }), 'rm -rf /').behavior).toBe('ask');
  });

  it('session patterns share the hardened matcher', () => {
    const pattern = sessionPatternFor({ name: 'Bash', command: 'cat notes.txt' });
    const r = rules({ allowed: [pattern] });
    expect(bash(r, 'cat a && rm -rf /').behavior).toBe('ask');
    expect(bash(r, 'cat $(rm -rf /)').behavior).toBe('ask');
    expect(bash(r, 'timeout 5 cat a').behavior).toBe('allow');
  });
});

describe('hostile input does not break the matcher', () => {
  it.each([
    'a'.repeat(200_000),
    `${'echo x; '.repeat(20_000)}rm -rf /`,
    '"'.repeat(50_001),
    "'".repeat(50_001),
    '\\'.repeat(10_001),
    '$('.repeat(10_000),
    '<'.repeat(10_000),
    '#'.repeat(10_000),
  ])('input of %#', (command) => {
    const started = Date.now();
    const d = bash(rules({ allowed: ['Bash(echo:*)'], denied: ['Bash(rm:*)'] }), command);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(['allow', 'deny', 'ask']).toContain(d.behavior);
    if (command.endsWith('rm -rf /')) expect(d.behavior).toBe('deny');
  });
});
