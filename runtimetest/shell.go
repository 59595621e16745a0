package runtimetest

import (
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nodekit/nodekit/core"
)

// This file is the simulated shell: enough of sh to read the commands of
// test containers and exec probes, with sleeps on a simulated timeline.
// The package documentation lists what it understands.

// DefaultExec is the ExecFunc of containers without Behavior.Exec. It runs
// cmd in the simulated shell: echo writes its output, exit and false set
// the exit code, sleep takes simulated time, loops never end, and other
// programs succeed at once without output.
func DefaultExec(_ string, cmd []string) (core.ExecResult, time.Duration, error) {
	sh := &shell{}
	sh.top(cmd)
	took := sh.now
	if sh.forever {
		took = Forever
	}
	return core.ExecResult{Stdout: sh.stdout, Stderr: sh.stderr, ExitCode: sh.status}, took, nil
}

// commandProgram reads what a container's process does from its command
// line. pid1 says whether the process is PID 1 of its own PID namespace.
func commandProgram(argv []string, pid1 bool) program {
	if len(argv) > 0 && path.Base(argv[0]) == "busybox" {
		argv = argv[1:]
	}
	if len(argv) == 0 || !simulated(path.Base(argv[0])) {
		// The image's entrypoint or a program of its own: a service that
		// runs until stopped.
		return behaviorProgram(Behavior{})
	}
	sh := &shell{}
	sh.top(argv)
	p := program{pid1: pid1, busy: sh.busy}
	if !sh.forever {
		p.exit = &Exit{After: sh.now, Code: sh.status}
	}
	if t := sh.trap; t != nil {
		p.handlerAt = t.at
		h := &shell{}
		h.script(t.action)
		if t.action != "" && h.exited && !h.forever {
			p.handler = &Exit{After: h.now, Code: h.status}
		} else {
			// An empty action ignores the signal; any other action that
			// does not exit handles it and the shell carries on.
			p.ignore = true
		}
	}
	return p
}

// simulated reports whether the simulated shell knows a program. The
// programs it does not know succeed at once in scripts and exec.
func simulated(name string) bool {
	switch name {
	case "sh", "bash", "ash", "dash", "sleep", "true", "false", "echo":
		return true
	}
	return false
}

const maxShellDepth = 8

type shell struct {
	now     time.Duration // since the process started
	status  int32
	exited  bool // exit ran, or an exec'd program ended
	forever bool // the process never ends by itself
	broke   bool // break ran in a loop
	stdout  []byte
	stderr  []byte
	trap    *trap
	busy    busyTimes
	depth   int
}

// trap is a handler for SIGTERM, installed at a time.
type trap struct {
	action string
	at     time.Duration
}

// busyTimes are the spans of a shell's foreground children (sleeps): sh
// runs a trap only once the current child has ended.
type busyTimes struct {
	spans []span
	// A loop that repeats forever from loopStart, every period, with
	// loopSpans relative to the start of each iteration.
	loopStart time.Duration
	period    time.Duration
	loopSpans []span
}

type span struct{ from, to time.Duration }

// delay is how long a signal that arrives at t waits for the current
// foreground child.
func (b *busyTimes) delay(t time.Duration) time.Duration {
	for _, s := range b.spans {
		if t >= s.from && t < s.to {
			return s.to - t
		}
	}
	if b.period > 0 && t >= b.loopStart {
		off := (t - b.loopStart) % b.period
		for _, s := range b.loopSpans {
			if off >= s.from && off < s.to {
				return s.to - off
			}
		}
	}
	return 0
}

func (sh *shell) done() bool { return sh.exited || sh.forever || sh.broke }

func (sh *shell) errorf(format string, args ...any) {
	sh.stderr = fmt.Appendf(sh.stderr, format+"\n", args...)
}

// top runs a process's argv: sh -c runs the script in this shell, anything
// else is one program.
func (sh *shell) top(argv []string) {
	if len(argv) >= 3 && isShell(path.Base(argv[0])) && argv[1] == "-c" {
		sh.script(argv[2])
		return
	}
	sh.command(argv, toStdout)
}

func isShell(name string) bool {
	return name == "sh" || name == "bash" || name == "ash" || name == "dash"
}

// script parses and runs src; a syntax error ends the shell with status 2.
func (sh *shell) script(src string) {
	list, err := parseScript(src)
	if err != nil {
		sh.errorf("sh: %v", err)
		sh.status, sh.exited = 2, true
		return
	}
	sh.run(list)
}

func (sh *shell) run(list []stmt) {
	for _, s := range list {
		if sh.done() {
			return
		}
		if (s.join == "&&" && sh.status != 0) || (s.join == "||" && sh.status == 0) {
			continue
		}
		switch {
		case s.loop != nil:
			sh.runLoop(s.loop)
		case s.cond != nil:
			sh.runIf(s.cond)
		default:
			words, out := redirections(s.words)
			sh.command(words, out)
		}
	}
}

func (sh *shell) runLoop(l *loopStmt) {
	defer func() { sh.broke = false }()
	if l.kind == "for" {
		sh.status = 0
		for range l.items {
			sh.run(l.body)
			if sh.done() {
				return
			}
		}
		return
	}
	start, n := sh.now, len(sh.busy.spans)
	sh.run(l.cond)
	if sh.done() {
		return
	}
	if (sh.status == 0) == (l.kind == "until") {
		sh.status = 0
		return
	}
	sh.run(l.body)
	if sh.done() {
		return
	}
	// Nothing in the simulation changes between iterations: a loop that
	// ran once runs forever, repeating its timeline.
	sh.busy.loopStart, sh.busy.period = start, sh.now-start
	for _, s := range sh.busy.spans[n:] {
		sh.busy.loopSpans = append(sh.busy.loopSpans, span{s.from - start, s.to - start})
	}
	sh.busy.spans = sh.busy.spans[:n]
	sh.forever = true
}

func (sh *shell) runIf(c *ifStmt) {
	for i, cond := range c.conds {
		sh.run(cond)
		if sh.done() {
			return
		}
		if sh.status == 0 {
			sh.run(c.bodies[i])
			return
		}
	}
	sh.status = 0
	sh.run(c.els)
}

type output int

const (
	toStdout output = iota
	toStderr
	toNowhere
)

// redirections removes the redirections from a simple command's words and
// says where its standard output goes.
func redirections(words []string) ([]string, output) {
	out := toStdout
	rest := words[:0:0]
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w == ">&2" || w == "1>&2":
			out = toStderr
		case strings.HasPrefix(w, "2>"):
			if w == "2>" || w == "2>>" {
				i++
			}
		case strings.HasPrefix(w, ">") || strings.HasPrefix(w, "1>"):
			out = toNowhere
			if w == ">" || w == ">>" || w == "1>" || w == "1>>" {
				i++
			}
		default:
			rest = append(rest, w)
		}
	}
	return rest, out
}

// command runs one simple command.
func (sh *shell) command(words []string, out output) {
	if len(words) > 0 && path.Base(words[0]) == "busybox" {
		words = words[1:]
	}
	if len(words) == 0 {
		sh.status = 0
		return
	}
	args := words[1:]
	switch path.Base(words[0]) {
	case "exit":
		code := sh.status
		if len(args) > 0 {
			n, err := strconv.Atoi(args[0])
			if err != nil {
				sh.errorf("sh: exit: Illegal number: %s", args[0])
				n = 2
			}
			code = int32(n & 0xff)
		}
		sh.status, sh.exited = code, true
	case "true", ":":
		sh.status = 0
	case "false":
		sh.status = 1
	case "echo":
		text := echo(args)
		switch out {
		case toStdout:
			sh.stdout = append(sh.stdout, text...)
		case toStderr:
			sh.stderr = append(sh.stderr, text...)
		}
		sh.status = 0
	case "sleep":
		d, err := parseSleep(args)
		if err != nil {
			sh.errorf("sleep: %v", err)
			sh.status = 1
			return
		}
		sh.sleep(d)
		sh.status = 0
	case "trap":
		sh.setTrap(args)
		sh.status = 0
	case "break":
		sh.broke = true
	case "exec":
		if len(args) > 0 {
			// The program replaces the shell and its traps.
			sh.trap = nil
			sh.command(args, out)
			sh.exited = true
		}
	case "sh", "bash", "ash", "dash":
		sh.subshell(args)
	default:
		sh.status = 0
	}
}

func echo(args []string) string {
	newline := "\n"
	if len(args) > 0 && args[0] == "-n" {
		args, newline = args[1:], ""
	}
	return strings.Join(args, " ") + newline
}

// sleep runs a foreground sleep of d.
func (sh *shell) sleep(d time.Duration) {
	end := addDuration(sh.now, d)
	sh.busy.spans = append(sh.busy.spans, span{sh.now, end})
	sh.now = end
	if end == Forever {
		sh.forever = true
	}
}

// parseSleep reads the operands of sleep: numbers of seconds with an
// optional s, m, h or d suffix, or infinity; their sum.
func parseSleep(args []string) (time.Duration, error) {
	if len(args) == 0 {
		return 0, errors.New("missing operand")
	}
	var total time.Duration
	for _, a := range args {
		if a == "infinity" || a == "inf" {
			return Forever, nil
		}
		unit := time.Second
		num := a
		if len(a) > 0 {
			switch a[len(a)-1] {
			case 's':
				num = a[:len(a)-1]
			case 'm':
				unit, num = time.Minute, a[:len(a)-1]
			case 'h':
				unit, num = time.Hour, a[:len(a)-1]
			case 'd':
				unit, num = 24*time.Hour, a[:len(a)-1]
			}
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f < 0 || math.IsNaN(f) {
			return 0, fmt.Errorf("invalid number '%s'", a)
		}
		d := f * float64(unit)
		if d >= float64(Forever) {
			return Forever, nil
		}
		total = addDuration(total, time.Duration(d))
	}
	return total, nil
}

// setTrap runs the trap builtin; only SIGTERM matters to the simulation.
func (sh *shell) setTrap(args []string) {
	if len(args) < 2 {
		return
	}
	for _, sig := range args[1:] {
		switch strings.ToUpper(sig) {
		case "TERM", "SIGTERM", "15":
			if args[0] == "-" {
				sh.trap = nil
			} else {
				sh.trap = &trap{action: args[0], at: sh.now}
			}
			return
		}
	}
}

// subshell runs sh [-c script]. A child shell is one foreground child of
// this one: its whole run delays this shell's trap.
func (sh *shell) subshell(args []string) {
	sh.status = 0
	if len(args) < 2 || args[0] != "-c" {
		return
	}
	if sh.depth >= maxShellDepth {
		sh.errorf("sh: too many nested shells")
		sh.status = 2
		return
	}
	sub := &shell{now: sh.now, depth: sh.depth + 1}
	sub.script(args[1])
	end := sub.now
	if sub.forever {
		end = Forever
	}
	sh.busy.spans = append(sh.busy.spans, span{sh.now, end})
	sh.now, sh.status, sh.forever = sub.now, sub.status, sub.forever
	sh.stdout = append(sh.stdout, sub.stdout...)
	sh.stderr = append(sh.stderr, sub.stderr...)
}

// The parser: a script is a list of statements joined by ;, newlines, &&
// and ||; a statement is a simple command, a while/until/for loop or an
// if. & and | are read as ; (the simulation runs everything in sequence).

type stmt struct {
	join  string // how it joins the previous statement: ";", "&&" or "||"
	words []string
	loop  *loopStmt
	cond  *ifStmt
}

type loopStmt struct {
	kind  string // "while", "until" or "for"
	items []string
	cond  []stmt
	body  []stmt
}

type ifStmt struct {
	conds  [][]stmt
	bodies [][]stmt
	els    []stmt
}

type token struct {
	text string
	op   bool
}

func reserved(word string) bool {
	switch word {
	case "do", "done", "then", "elif", "else", "fi":
		return true
	}
	return false
}

func parseScript(src string) ([]stmt, error) {
	toks, err := tokenize(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	list, _, err := p.list()
	return list, err
}

type parser struct {
	toks []token
	pos  int
}

// list parses statements up to one of the reserved words in stops, which
// it consumes and returns.
func (p *parser) list(stops ...string) ([]stmt, string, error) {
	var out []stmt
	join := ";"
	for {
		for p.pos < len(p.toks) && p.toks[p.pos].op {
			join = p.toks[p.pos].text
			p.pos++
		}
		if p.pos == len(p.toks) {
			if len(stops) > 0 {
				return nil, "", fmt.Errorf("syntax error: end of file while expecting %q", stops[0])
			}
			return out, "", nil
		}
		word := p.toks[p.pos].text
		if slices.Contains(stops, word) {
			p.pos++
			return out, word, nil
		}
		if reserved(word) {
			return nil, "", fmt.Errorf("syntax error: unexpected %q", word)
		}
		s, err := p.statement()
		if err != nil {
			return nil, "", err
		}
		s.join = join
		out = append(out, s)
		join = ";"
	}
}

func (p *parser) statement() (stmt, error) {
	switch kind := p.toks[p.pos].text; kind {
	case "while", "until":
		p.pos++
		cond, _, err := p.list("do")
		if err != nil {
			return stmt{}, err
		}
		body, _, err := p.list("done")
		return stmt{loop: &loopStmt{kind: kind, cond: cond, body: body}}, err
	case "for":
		p.pos = min(p.pos+2, len(p.toks)) // for NAME
		var items []string
		if p.pos < len(p.toks) && p.toks[p.pos].text == "in" {
			for p.pos++; p.pos < len(p.toks) && !p.toks[p.pos].op; p.pos++ {
				items = append(items, p.toks[p.pos].text)
			}
		}
		if _, _, err := p.list("do"); err != nil {
			return stmt{}, err
		}
		body, _, err := p.list("done")
		return stmt{loop: &loopStmt{kind: kind, items: items, body: body}}, err
	case "if":
		p.pos++
		c := &ifStmt{}
		for {
			cond, _, err := p.list("then")
			if err != nil {
				return stmt{}, err
			}
			body, end, err := p.list("elif", "else", "fi")
			if err != nil {
				return stmt{}, err
			}
			c.conds, c.bodies = append(c.conds, cond), append(c.bodies, body)
			switch end {
			case "elif":
				continue
			case "else":
				c.els, _, err = p.list("fi")
			}
			return stmt{cond: c}, err
		}
	}
	var words []string
	for ; p.pos < len(p.toks) && !p.toks[p.pos].op; p.pos++ {
		words = append(words, p.toks[p.pos].text)
	}
	return stmt{words: words}, nil
}

// tokenize splits a script into words and operators, removing quotes.
func tokenize(s string) ([]token, error) {
	var toks []token
	var word strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			toks = append(toks, token{text: word.String()})
			word.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == ' ' || ch == '\t' || ch == '\r':
			flush()
		case ch == '#' && !inWord:
			for i+1 < len(s) && s[i+1] != '\n' {
				i++
			}
		case ch == ';' || ch == '\n':
			flush()
			toks = append(toks, token{text: ";", op: true})
		case ch == '&' || ch == '|':
			flush()
			op := ";"
			if i+1 < len(s) && s[i+1] == ch {
				op = s[i : i+2]
				i++
			}
			toks = append(toks, token{text: op, op: true})
		case ch == '>':
			// A redirection is a word of its own unless a file descriptor
			// number leads it.
			if inWord && strings.Trim(word.String(), "0123456789") != "" {
				flush()
			}
			inWord = true
			word.WriteByte(ch)
			if i+1 < len(s) && (s[i+1] == '>' || s[i+1] == '&') {
				i++
				word.WriteByte(s[i])
			}
		case ch == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("syntax error: unterminated quoted string")
			}
			word.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 1
		case ch == '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				word.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("syntax error: unterminated quoted string")
			}
			inWord = true
		case ch == '\\':
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					word.WriteByte(s[i])
					inWord = true
				}
			}
		default:
			word.WriteByte(ch)
			inWord = true
		}
	}
	flush()
	return toks, nil
}
