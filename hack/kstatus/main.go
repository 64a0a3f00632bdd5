// kstatus reads SchemaMigration objects as JSON (one object, a JSON array, or a Kubernetes List) on
// stdin and prints, one JSON object a line, the status that sigs.k8s.io/cli-utils' kstatus computes for
// each: what Flux's health checks and `kubectl wait --for=jsonpath` pipelines built on kstatus read.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type line struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

// objects decodes as the apiserver's clients do (whole numbers as int64, which kstatus's accessors need).
func objects(data []byte) ([]map[string]interface{}, error) {
	var many []map[string]interface{}
	if err := utiljson.Unmarshal(data, &many); err == nil {
		return many, nil
	}
	var one map[string]interface{}
	if err := utiljson.Unmarshal(data, &one); err != nil {
		return nil, fmt.Errorf("stdin is neither a JSON object nor an array of objects: %w", err)
	}
	if items, ok := one["items"].([]interface{}); ok {
		for i, item := range items {
			obj, ok := item.(map[string]interface{})
			if !ok {
				return nil, fmt.Errorf("items[%d] is not an object", i)
			}
			many = append(many, obj)
		}
		return many, nil
	}
	return []map[string]interface{}{one}, nil
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: reading stdin:", err)
		os.Exit(2)
	}
	objs, err := objects(data)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for i, obj := range objs {
		u := &unstructured.Unstructured{Object: obj}
		res, err := status.Compute(u)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: object %d (%s/%s): %v\n", i, u.GetNamespace(), u.GetName(), err)
			os.Exit(1)
		}
		if err := out.Encode(line{u.GetNamespace(), u.GetName(), string(res.Status), res.Message}); err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: writing stdout:", err)
			os.Exit(2)
		}
	}
}
