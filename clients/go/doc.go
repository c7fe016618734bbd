// Package pluginhost is a client for the wasm-plugin-host HTTP API, for Go services that run
// WebAssembly plugins through the host instead of loading them themselves.
//
// A [Client] runs ABI v1 plugins ([Client.Run], an integer in, an integer out), calls ABI v2
// functions with bytes ([Client.Call]), streams an [io.Reader] through a streaming function
// into an [io.Writer] ([Client.Stream]), and lists plugins and their versions. Every call
// takes a [context.Context]; cancelling it ends the request, streams included.
//
//	client, err := pluginhost.New("http://127.0.0.1:8080")
//	if err != nil { ... }
//	result, err := client.Run(ctx, "hello", 21) // result.Output == 43
//
// # Versions
//
// [WithVersion] chooses among a plugin's versions with a requirement in Cargo's syntax
// (`^1.2`, `~1.4.0`, `=1.4.2`, `>=1, <3`); the result's Version field says which version ran
// ("" for an unversioned plugin file).
//
// # Errors
//
// Every answer of the host other than success is an [*Error] carrying the host's stable code
// (such as [CodePluginNotFound]), the HTTP status, whether retrying can help, and the delay the
// host asked for; match it with [errors.As]. A stream the host cut off after its output began
// (the plugin failed mid-stream, or a limit was reached) is [ErrIncompleteStream]. A cancelled
// or expired context gives an error for which errors.Is(err, ctx.Err()) holds.
//
// # Retries
//
// Transient failures (the host's 503 answers, such as `overloaded`, and a connection refused,
// or closed or reset before any answer)
// are retried with exponential backoff and jitter, waiting at least as long as the host's
// Retry-After, up to RetryPolicy.MaxAttempts attempts in all ([DefaultRetryPolicy]; set
// your own with [WithRetryPolicy]). Plugin calls are safe to repeat (each runs on a fresh
// instance), so [Client.Run] and [Client.Call] are retried. A stream is retried only while
// nothing of its reader has been read: it is sent with `Expect: 100-continue`, so a host
// that refuses it at once does so before the first byte leaves, and the reader is never read
// twice. Health and readiness are never retried: a probe must report what it sees.
package pluginhost
