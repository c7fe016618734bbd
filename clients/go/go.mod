module example.com/wasm-plugin-host/clients/go

go 1.19
