// Command sizecheck fails when a non-test Go file is over -file lines or a
// function (or function literal) is over -func lines: long files and long
// functions are where a newcomer gets lost (issue #15). Generated files are
// exempt; a table belongs in a package-level composite literal, which no
// function limit counts.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// finding is one file or function over its limit.
type finding struct {
	pos   token.Position
	what  string
	lines int
}

func main() {
	maxFile := flag.Int("file", 600, "most lines in a non-test .go file")
	maxFunc := flag.Int("func", 80, "most lines in a function")
	flag.Parse()
	roots := flag.Args()
	if len(roots) == 0 {
		roots = []string{"."}
	}
	var all []finding
	for _, root := range roots {
		f, err := check(root, *maxFile, *maxFunc)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sizecheck:", err)
			os.Exit(2)
		}
		all = append(all, f...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].lines > all[j].lines })
	for _, f := range all {
		fmt.Printf("%s: %s is %d lines\n", f.pos, f.what, f.lines)
	}
	if len(all) > 0 {
		fmt.Printf("sizecheck: %d over the limits (files %d lines, functions %d)\n", len(all), *maxFile, *maxFunc)
		os.Exit(1)
	}
}

// check walks root for non-test Go files outside hidden folders and testdata.
func check(root string, maxFile, maxFunc int) ([]finding, error) {
	var out []finding
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
		if err != nil {
			return err
		}
		if ast.IsGenerated(f) {
			return nil
		}
		if n := bytes.Count(src, []byte("\n")); n > maxFile {
			out = append(out, finding{fset.Position(f.Pos()), "file", n})
		}
		out = append(out, longFuncs(fset, f, maxFunc)...)
		return nil
	})
	return out, err
}

// longFuncs lists the declared functions and literals of f over max lines.
func longFuncs(fset *token.FileSet, f *ast.File, max int) []finding {
	var out []finding
	ast.Inspect(f, func(n ast.Node) bool {
		var what string
		var body *ast.BlockStmt
		switch d := n.(type) {
		case *ast.FuncDecl:
			what, body = "func "+funcName(d), d.Body
		case *ast.FuncLit:
			what, body = "func literal", d.Body
		default:
			return true
		}
		if body == nil {
			return true
		}
		start := fset.Position(n.Pos())
		if l := fset.Position(body.Rbrace).Line - start.Line + 1; l > max {
			out = append(out, finding{start, what, l})
		}
		return true
	})
	return out
}

func funcName(d *ast.FuncDecl) string {
	if d.Recv == nil || len(d.Recv.List) == 0 {
		return d.Name.Name
	}
	t := d.Recv.List[0].Type
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
			continue
		case *ast.IndexExpr:
			t = x.X
			continue
		case *ast.IndexListExpr:
			t = x.X
			continue
		case *ast.Ident:
			return x.Name + "." + d.Name.Name
		}
		return d.Name.Name
	}
}
