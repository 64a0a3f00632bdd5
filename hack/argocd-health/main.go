// argocd-health runs Argo CD resource health scripts the way Argo CD does (gopher-lua, the object as
// the global `obj`, a table with status and message returned) over their health_test.yaml cases:
//
//	argocd-health DIR
//
// DIR is a resource_customizations tree (GROUP/KIND/health.lua, health_test.yaml, testdata/). Every
// case's healthStatus must match exactly; the last line counts them, and the exit status is 1 on any
// mismatch.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type testCase struct {
	HealthStatus healthStatus `json:"healthStatus"`
	InputPath    string       `json:"inputPath"`
}

type testFile struct {
	Tests []testCase `json:"tests"`
}

// newState opens the libraries Argo CD's resource scripts get (no os, no io).
func newState() *lua.LState {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
		{lua.DebugLibName, lua.OpenDebug},
	} {
		l.Push(l.NewFunction(lib.fn))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	return l
}

func toLua(l *lua.LState, v interface{}) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case []interface{}:
		t := l.NewTable()
		for _, item := range x {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]interface{}:
		t := l.NewTable()
		for k, item := range x {
			t.RawSetString(k, toLua(l, item))
		}
		return t
	default:
		panic(fmt.Sprintf("unexpected value %T", v))
	}
}

func run(script string, obj map[string]interface{}) (healthStatus, error) {
	l := newState()
	defer l.Close()
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return healthStatus{}, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	return healthStatus{lua.LVAsString(ret.RawGetString("status")), lua.LVAsString(ret.RawGetString("message"))}, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health RESOURCE_CUSTOMIZATIONS_DIR")
		os.Exit(2)
	}
	scripts, err := filepath.Glob(filepath.Join(os.Args[1], "*", "*", "health.lua"))
	if err != nil || len(scripts) == 0 {
		fmt.Fprintf(os.Stderr, "argocd-health: no */*/health.lua under %s\n", os.Args[1])
		os.Exit(2)
	}
	sort.Strings(scripts)
	passed, failed := 0, 0
	for _, path := range scripts {
		dir := filepath.Dir(path)
		script, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "argocd-health:", err)
			os.Exit(2)
		}
		testsPath := filepath.Join(dir, "health_test.yaml")
		raw, err := os.ReadFile(testsPath)
		if err != nil {
			fmt.Fprintf(os.Stderr, "argocd-health: %s has no health_test.yaml: %v\n", path, err)
			os.Exit(2)
		}
		var tf testFile
		if err := yaml.UnmarshalStrict(raw, &tf); err != nil {
			fmt.Fprintf(os.Stderr, "argocd-health: %s: %v\n", testsPath, err)
			os.Exit(2)
		}
		if len(tf.Tests) == 0 {
			fmt.Fprintf(os.Stderr, "argocd-health: %s lists no tests\n", testsPath)
			os.Exit(2)
		}
		for _, tc := range tf.Tests {
			input := filepath.Join(dir, tc.InputPath)
			data, err := os.ReadFile(input)
			if err != nil {
				fmt.Fprintf(os.Stderr, "argocd-health: %s: %v\n", testsPath, err)
				os.Exit(2)
			}
			var obj map[string]interface{}
			if err := yaml.Unmarshal(data, &obj); err != nil {
				fmt.Fprintf(os.Stderr, "argocd-health: %s: %v\n", input, err)
				os.Exit(2)
			}
			got, err := run(string(script), obj)
			switch {
			case err != nil:
				failed++
				fmt.Printf("FAIL %s: %s: %v\n", path, tc.InputPath, err)
			case got != tc.HealthStatus:
				failed++
				fmt.Printf("FAIL %s: %s: got %q %q, want %q %q\n", path, tc.InputPath, got.Status, got.Message,
					tc.HealthStatus.Status, tc.HealthStatus.Message)
			default:
				passed++
				fmt.Printf("ok   %s: %s: %s\n", path, tc.InputPath, got.Status)
			}
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
