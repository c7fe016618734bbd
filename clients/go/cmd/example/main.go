// Command example is the Go client's runnable example (README.md shows the same code): it
// runs the hello plugin, calls a function with bytes, streams its standard input through the
// streaming sha256 plugin and shows a typed error.
//
//	go run ./cmd/example -url http://127.0.0.1:8080 < some-file
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	pluginhost "example.com/wasm-plugin-host/clients/go"
)

func main() {
	address := flag.String("url", "http://127.0.0.1:8080", "the plugin host's address")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	client, err := pluginhost.New(*address)
	if err != nil {
		log.Fatal(err)
	}
	// ABI v1: an integer in, an integer out.
	hello, err := client.Run(ctx, "hello", 21)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(hello.Output) // 43
	// ABI v2: bytes in, bytes out.
	upper, err := client.Call(ctx, "text", "upper", []byte("hello"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(upper.Output)) // HELLO
	// A stream of any length, from a reader to a writer.
	if _, err := client.Stream(ctx, "sha256", "sha256sum", os.Stdin, os.Stdout); err != nil {
		log.Fatal(err)
	}
	fmt.Println()
	// Failures carry the host's stable code.
	_, err = client.Run(ctx, "no_such_plugin", 1)
	var hostErr *pluginhost.Error
	if errors.As(err, &hostErr) {
		fmt.Println(hostErr.StatusCode, hostErr.Code) // 404 plugin_not_found
	}
}
