// Command engines prints the engines installed on this machine, one $GOMLX_BACKEND value per
// line, in the order the automatic choice prefers them (backend.Installed); the pure Go backend
// is always last. scripts/test.sh runs the tests on each.
//
//	go run ./scripts/engines
package main

import (
	"fmt"

	"github.com/godiffusion/godiffusion/backend"
)

func main() {
	for _, cfg := range backend.Installed() {
		fmt.Println(cfg)
	}
}
