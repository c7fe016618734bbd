//! What the tests of several modules share: a shell at the project root, and a harness that
//! builds the real plugins with the real compiler into a temporary folder, so a test failure
//! means `cargo xtask build-plugins` would fail the same way.

use std::fs;

use xshell::Shell;

use crate::{
    build_plugins::{self, Built, Compiler, Layout, Plugin, discover},
    setup,
};

/// A shell rooted at the project, like the one `main` builds.
pub(crate) fn project_shell() -> Shell {
    let sh = Shell::new().expect("a shell");
    sh.change_dir(crate::project_root());
    sh
}

/// Everything needed to build plugins, with outputs going to fresh temporary folders.
pub(crate) struct Harness {
    pub(crate) compiler: Compiler,
    pub(crate) layout: Layout,
    /// Stands for `target/plugins`, where examples go.
    pub(crate) out: tempfile::TempDir,
    /// Stands for `target/plugin-fixtures`, where everything else goes.
    pub(crate) fixtures: tempfile::TempDir,
    _scratch: tempfile::TempDir,
}

impl Harness {
    pub(crate) fn new() -> Self {
        let sh = project_shell();
        let clang = setup::wasm_clang(&sh).expect("a clang for wasm32 (run `cargo xtask setup`)");
        let out = tempfile::tempdir().expect("a temporary folder");
        let fixtures = tempfile::tempdir().expect("a temporary folder");
        let scratch = tempfile::tempdir().expect("a temporary folder");
        let mut layout = Layout::in_project(&sh.current_dir());
        layout.out_dir = out.path().to_path_buf();
        layout.fixture_dir = fixtures.path().to_path_buf();
        let compiler = Compiler::new(&clang, &layout, scratch.path()).expect("cc configures clang");
        Self { compiler, layout, out, fixtures, _scratch: scratch }
    }

    /// Every plugin under the project's `plugins/`.
    pub(crate) fn plugins(&self) -> Vec<Plugin> {
        discover(&self.layout.plugins_dir).expect("plugins/ is well formed")
    }

    /// Builds `plugin` as `cargo xtask build-plugins` would (without `--force`).
    pub(crate) fn build(&self, plugin: &Plugin) -> anyhow::Result<Built> {
        build_plugins::build(&self.compiler, &self.layout, plugin, false)
    }

    /// The real float fixture, with its `expect-violation` line replaced by `directive`.
    pub(crate) fn float_fixture_with(&self, directive: &str) -> String {
        let fixture = self.layout.plugins_dir.join("invalid/float.c");
        fs::read_to_string(fixture).unwrap().replace("// expect-violation: float-instruction", directive)
    }
}

/// A throwaway `plugins/` folder holding one source file at `path` (say `invalid/x.c` for
/// a fixture or `x/x.c` for an example), and the plugin discovery makes of it (the first
/// build, for a compat fixture, which has one per optimisation level).
pub(crate) fn scratch_plugin(path: &str, source: &str) -> (tempfile::TempDir, Plugin) {
    let plugins = tempfile::tempdir().unwrap();
    let file = plugins.path().join(path);
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, source).unwrap();
    let found = discover(plugins.path()).unwrap();
    assert!(!found.is_empty() && found.iter().all(|p| p.source == file), "discovery made {found:?} of {path}");
    (plugins, found.into_iter().next().unwrap())
}

/// An example plugin that complies with the ABI, to be given directives that make it something else.
pub(crate) const COMPLIANT_C: &str = "#include <wasm_plugin.h>\n\
    PLUGIN_EXPORT(init) int init(void) { return PLUGIN_OK; }\n\
    PLUGIN_EXPORT(process) int process(int input) { return input; }\n\
    PLUGIN_EXPORT(cleanup) int cleanup(void) { return PLUGIN_OK; }\n";

/// A real OCI registry (Debian's `docker-registry`, the CNCF distribution registry) on
/// 127.0.0.1 with its storage in a temporary folder, started the way `cargo xtask registry`
/// starts one; killed when dropped. Installed by `cargo xtask setup`.
pub(crate) struct Registry(crate::registry::LocalRegistry);

impl Registry {
    /// Starts a registry; with `credentials`, it requires them (htpasswd, bcrypt).
    pub(crate) fn start(credentials: Option<(&str, &str)>) -> Self {
        let htpasswd = credentials.map(|(user, password)| format!("{user}:{}\n", bcrypt::hash(password, 4).unwrap()));
        Registry(
            crate::registry::LocalRegistry::start(None, None, htpasswd.as_deref())
                .expect("docker-registry runs (`cargo xtask setup` installs it)"),
        )
    }
}

impl std::ops::Deref for Registry {
    type Target = crate::registry::LocalRegistry;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
