package pluginhost

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Plugin is one plugin as a call gets it (`GET /plugins`, `GET /plugins/{name}`).
type Plugin struct {
	Name string `json:"name"`
	// Version is the version described; "" for an unversioned plugin file.
	Version string `json:"version"`
	// Size is the file's size in bytes; 0 when unknown.
	Size int64 `json:"size"`
	// ModifiedUnix is the file's last modification, in seconds since the Unix epoch.
	ModifiedUnix int64 `json:"modified_unix"`
	// SHA256 is the hex SHA-256 of the file; "" when it could not be read.
	SHA256 string `json:"sha256"`
	// ABI is the ABI check's verdict; nil when the file could not be read.
	ABI *ABI `json:"abi"`
	// Loaded reports whether this version is compiled and serving.
	Loaded bool `json:"loaded"`
	// LastError says why the newest file version failed to load; "" when it did not.
	LastError string `json:"last_error"`
	// Quarantine is set while the plugin is refused for crashing its workers.
	Quarantine *Quarantine `json:"quarantine"`
	// Conflicts lists versions never served because they differ from this one only in
	// build metadata.
	Conflicts []string `json:"conflicts"`
}

// ABI is the ABI check's verdict on a plugin file.
type ABI struct {
	Compliant bool `json:"compliant"`
	// Version is the ABI version the plugin is checked and runs as (1 or 2).
	Version int `json:"version"`
	// DeclaredVersion is what the plugin's marker declares; 0 without one.
	DeclaredVersion int      `json:"declared_version"`
	Violations      []string `json:"violations"`
	Warnings        []string `json:"warnings"`
	// V2 is an ABI v2 plugin's interface; nil for ABI v1.
	V2 *Interface `json:"v2"`
}

// Interface is an ABI v2 plugin's buffers and functions.
type Interface struct {
	Input     Buffer     `json:"input"`
	Output    Buffer     `json:"output"`
	Functions []Function `json:"functions"`
}

// Buffer is one of an ABI v2 plugin's two buffers.
type Buffer struct {
	Offset   uint32 `json:"offset"`
	Capacity uint32 `json:"capacity"`
}

// Function is one function of an ABI v2 plugin.
type Function struct {
	Name string `json:"name"`
	// Kind is "call" ([Client.Call]) or "stream" ([Client.Stream], or [Client.Call] for a
	// whole stream at once).
	Kind string `json:"kind"`
}

// Quarantine describes a plugin refused for a while after crashing its workers.
type Quarantine struct {
	ConsecutiveCrashes uint32 `json:"consecutive_crashes"`
	RetryAfterSecs     uint64 `json:"retry_after_secs"`
}

// Versions is every version of a plugin (`GET /plugins/{name}/versions`).
type Versions struct {
	Name string `json:"name"`
	// Versions are lowest first, an unversioned file (Version "") before all.
	Versions []VersionInfo `json:"versions"`
}

// VersionInfo is one version of a plugin.
type VersionInfo struct {
	// Version is "" for the unversioned plugin file.
	Version string `json:"version"`
	// SHA256 is the hex SHA-256 of its content (a registry's layer digest); "" while unknown.
	SHA256 string `json:"sha256"`
	// Default reports whether a call without a version requirement gets this version.
	Default bool `json:"default"`
	// ShadowedBy is the version served instead of this one, which differs from it only in
	// build metadata; "" for a version that can be served.
	ShadowedBy string `json:"shadowed_by"`
}

// Readiness is the host's answer to `GET /readyz` when it is ready.
type Readiness struct {
	Status string `json:"status"`
	// Store describes the plugin store.
	Store string `json:"store"`
	// Plugins is the number of plugins in the store.
	Plugins int `json:"plugins"`
	// Unloadable names the plugins the host would refuse; the others are served.
	Unloadable      []string `json:"unloadable"`
	FileDescriptors struct {
		Open  uint64 `json:"open"`
		Limit uint64 `json:"limit"`
	} `json:"file_descriptors"`
	// Workers is set when plugins run in worker processes.
	Workers *Workers `json:"workers"`
	// StoreDegraded says since when and why the store serves only what it holds.
	StoreDegraded string `json:"store_degraded"`
}

// Workers is the state of the host's worker processes.
type Workers struct {
	Configured   int    `json:"configured"`
	Alive        int    `json:"alive"`
	Busy         int    `json:"busy"`
	Waiting      int    `json:"waiting"`
	SpawnFailure string `json:"spawn_failure"`
}

// Plugins lists every plugin, each as a call without a version requirement gets it.
func (c *Client) Plugins(ctx context.Context) ([]Plugin, error) {
	var plugins []Plugin
	_, err := c.getJSON(ctx, c.retry, "/plugins", nil, &plugins)
	return plugins, err
}

// Plugin describes one plugin, as a call gets it; [WithVersion] describes the version a
// requirement gets. The other call options are ignored.
func (c *Client) Plugin(ctx context.Context, name string, opts ...CallOption) (*Plugin, error) {
	var plugin Plugin
	_, err := c.getJSON(ctx, c.retry, "/plugins/"+pathSegment(name), gather(opts).query(), &plugin)
	if err != nil {
		return nil, err
	}
	return &plugin, nil
}

// Versions lists every version of a plugin.
func (c *Client) Versions(ctx context.Context, name string) (*Versions, error) {
	var versions Versions
	_, err := c.getJSON(ctx, c.retry, "/plugins/"+pathSegment(name)+"/versions", nil, &versions)
	if err != nil {
		return nil, err
	}
	return &versions, nil
}

// Health reports whether the host serves HTTP (`GET /healthz`): nil when it does. It is
// never retried.
func (c *Client) Health(ctx context.Context) error {
	resp, err := c.sendWith(ctx, NoRetry, func() (*http.Request, error) {
		return c.request(ctx, http.MethodGet, "/healthz", nil, nil, callOptions{})
	}, always)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	if err != nil {
		return c.readFailure(ctx, err)
	}
	if strings.TrimSpace(string(body)) != "ok" {
		return fmt.Errorf("plugin host: GET /healthz answered %q, not ok", body)
	}
	return nil
}

// Ready reports whether the host can serve calls (`GET /readyz`): its readiness when it can,
// an [*Error] (503, with the reason's code, such as [CodeStoreUnavailable]) when it cannot.
// It is never retried.
func (c *Client) Ready(ctx context.Context) (*Readiness, error) {
	var readiness Readiness
	if _, err := c.getJSON(ctx, NoRetry, "/readyz", nil, &readiness); err != nil {
		return nil, err
	}
	return &readiness, nil
}
