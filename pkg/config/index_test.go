package config

import "testing"

func TestBuildIndex(t *testing.T) {
	src := lines(
		`# [not] a = "header"`, // 1
		`top = "a # b [c] = d"`,
		`[a]`,
		`x = 1 # [b]`,
		`y.z = 'lit'`, // 5
		`"q.k" = """`,
		`x = 2`,
		`[c]"""`,
		`w = '''`,
		`''''`, // 10
		`arr = [`,
		`  1,`,
		`  [ 2,`,
		`    3 ],`,
		`  { k = "v", m.n = 4 },`, // 15
		`]`,
		`[[list]]`,
		`k = 1`,
		`[list.sub]`,
		`s = 1`, // 20
		`[[list]]`,
		`[list.sub]`,
		`s = 2`,
		`[ "q" . 'r' ]`,
		`d = 1979-05-27 07:32:00Z`, // 25
		`e = [1979-05-27 07:32:00Z, 2]`,
		`[[x.y]]`,
		`[[x.y.z]]`,
		`[[x.y.z]]`,
		`[[x.y]]`, // 30
		`[[x.y.z]]`,
		`esc = "\"]"`,
	)
	ix := buildIndex(src)
	k := func(segs ...string) string {
		p := ""
		for _, s := range segs {
			if len(s) > 1 && s[0] == '#' {
				p = indexKey(p, int(s[1]-'0'))
				continue
			}
			p = joinKey(p, s)
		}
		return p
	}
	tests := []struct {
		path string
		line int
	}{
		{k("top"), 2},
		{k("a"), 3},
		{k("a", "x"), 4},
		{k("a", "y"), 5},
		{k("a", "y", "z"), 5},
		{k("a", "q.k"), 6},
		{k("a", "w"), 9},
		{k("a", "arr"), 11},
		{k("a", "arr", "#0"), 12},
		{k("a", "arr", "#1"), 13},
		{k("a", "arr", "#1", "#0"), 13},
		{k("a", "arr", "#1", "#1"), 14},
		{k("a", "arr", "#2"), 15},
		{k("a", "arr", "#2", "k"), 15},
		{k("a", "arr", "#2", "m", "n"), 15},
		{k("list"), 17},
		{k("list", "#0"), 17},
		{k("list", "#0", "k"), 18},
		{k("list", "#0", "sub"), 19},
		{k("list", "#0", "sub", "s"), 20},
		{k("list", "#1"), 21},
		{k("list", "#1", "sub"), 22},
		{k("list", "#1", "sub", "s"), 23},
		{k("q", "r"), 24},
		{k("q", "r", "d"), 25},
		{k("q", "r", "e", "#1"), 26},
		{k("x", "y", "#0"), 27},
		{k("x", "y", "#0", "z", "#0"), 28},
		{k("x", "y", "#0", "z", "#1"), 29},
		{k("x", "y", "#1"), 30},
		{k("x", "y", "#1", "z", "#0"), 31},
		{k("x", "y", "#1", "z", "#0", "esc"), 32},
		// Lookups fall back to the nearest indexed ancestor.
		{k("a", "arr", "#2", "k", "deeper"), 15},
		{k("list", "#1", "missing"), 21},
		{k("nothing", "here"), 0},
	}
	for _, tt := range tests {
		if got := ix.line(tt.path); got != tt.line {
			t.Errorf("line(%s) = %d, want %d", displayKey(tt.path), got, tt.line)
		}
	}
	if _, ok := ix[k("c")]; ok {
		t.Errorf("[c] inside a multi-line string was indexed as a table")
	}
	if _, ok := ix[k("a", "x")]; !ok || ix[k("a", "x")] != 4 {
		t.Errorf("x inside a multi-line string overrode a.x")
	}
}

func TestDisplayKey(t *testing.T) {
	for _, tt := range []struct {
		p, want string
	}{
		{joinKey("a", "b"), "a.b"},
		{indexKey(joinKey("", "interface"), 2), "interface[2]"},
		{joinKey(indexKey(joinKey("home_agent", "mn"), 0), "key"), "home_agent.mn[0].key"},
		{joinKey("a", "b c"), `a."b c"`},
		{joinKey("a", ""), `a.""`},
		{joinKey("a", "[3]"), `a."[3]"`},
	} {
		if got := displayKey(tt.p); got != tt.want {
			t.Errorf("displayKey = %q, want %q", got, tt.want)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:      "plain",
		`a\"b\\c`:    `a"b\c`,
		`\t\n\e`:     "\t\n\x1b",
		`\u00e9\x41`: "éA",
		`\U0001F600`: "😀",
		`\u12`:       `\u12`,
		`\q`:         `\q`,
		`\`:          `\`,
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
