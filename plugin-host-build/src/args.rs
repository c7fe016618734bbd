// Included by `plugin-host/build.rs` and by `lib.rs` here: the link arguments for a `Link`.

impl Link {
    fn args(&self) -> Vec<String> {
        match &self.sysroot {
            Some(sysroot) => {
                let sys = sysroot.display();
                vec![
                    format!("-Wl,--dynamic-linker={sys}/ld-linux-x86-64.so.2"),
                    // DT_RPATH (not RUNPATH) also applies to the libraries' own dependencies.
                    "-Wl,--disable-new-dtags".to_owned(),
                    format!("-Wl,-rpath,{}", self.rpath),
                    format!("-Wl,-rpath-link,{sys}"),
                ]
            }
            None => vec![format!("-Wl,-rpath,{}", self.rpath)],
        }
    }
}
