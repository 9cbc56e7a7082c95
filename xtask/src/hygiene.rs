//! Rules about the repository itself, checked by its host tests: it stands alone, so no
//! file points at a path outside it, its map (`docs/architecture.md`) cannot drift from
//! its folders and crates, and `docs/kernel.md` says what every kernel source file is.

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::build::workspace_root;

    /// Every file under `dir` that is text, skipping build output and git's own folder.
    fn text_files(dir: &Path, out: &mut Vec<(std::path::PathBuf, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name == ".git" {
                continue;
            }
            if path.is_dir() {
                text_files(&path, out);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                out.push((path, text));
            }
        }
    }

    #[test]
    fn no_file_refers_outside_the_repository() {
        // Spelled in two pieces so that this file does not match itself.
        let outside = ["..", "/shared/"].concat();
        let mut files = Vec::new();
        text_files(&workspace_root(), &mut files);
        assert!(files.len() > 100, "only {} files found", files.len());
        let offenders: Vec<_> = files
            .iter()
            .filter(|(_, text)| text.contains(&outside))
            .map(|(path, _)| path.display().to_string())
            .collect();
        assert!(
            offenders.is_empty(),
            "files referring to {outside}: {offenders:?}"
        );
    }

    fn architecture() -> String {
        std::fs::read_to_string(workspace_root().join("docs").join("architecture.md"))
            .expect("docs/architecture.md")
    }

    #[test]
    fn every_top_level_folder_has_its_paragraph_in_the_map() {
        let map = architecture();
        let mut folders = Vec::new();
        for entry in std::fs::read_dir(workspace_root()).expect("the workspace") {
            let entry = entry.expect("a directory entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && !name.starts_with('.') && name != "target" {
                folders.push(name);
            }
        }
        assert!(folders.len() > 5, "{folders:?}");
        for folder in &folders {
            assert!(
                map.contains(&format!("### `{folder}/`")),
                "docs/architecture.md has no paragraph for {folder}/"
            );
        }
        for heading in map.lines().filter_map(|l| l.strip_prefix("### `")) {
            let folder = heading.trim_end_matches("/`");
            assert!(
                folders.iter().any(|f| f == folder),
                "docs/architecture.md describes {folder}/, which does not exist"
            );
        }
    }

    #[test]
    fn every_crate_of_the_workspace_is_in_the_crate_table() {
        let map = architecture();
        let packages = crate::build::workspace_packages().expect("cargo metadata");
        let root = workspace_root();
        let members: Vec<String> = packages
            .iter()
            .filter_map(|p| p["manifest_path"].as_str())
            .filter_map(|manifest| {
                let dir = std::path::Path::new(manifest).parent()?;
                Some(dir.strip_prefix(&root).ok()?.to_string_lossy().into_owned())
            })
            .collect();
        assert!(members.len() > 10, "{members:?}");
        for member in &members {
            let parent = member.rsplit_once('/').map_or("", |(p, _)| p);
            assert!(
                map.contains(&format!("| `{member}/` |"))
                    || map.contains(&format!("| `{parent}/*` |")),
                "docs/architecture.md's crate table has no row for {member}/"
            );
        }
    }

    #[test]
    fn every_kernel_source_file_is_named_in_the_kernel_document() {
        let root = workspace_root();
        let doc =
            std::fs::read_to_string(root.join("docs").join("kernel.md")).expect("docs/kernel.md");
        let mut named = 0;
        for dir in [
            "replicas/kernel-core/src",
            "replicas/kernel-core/src/kernel",
            "replicas/kernel/src",
        ] {
            for entry in std::fs::read_dir(root.join(dir)).expect("a source folder") {
                let name = entry.expect("a directory entry").file_name();
                let name = name.to_string_lossy();
                if !name.ends_with(".rs") || ["lib.rs", "main.rs", "mod.rs"].contains(&&*name) {
                    continue;
                }
                assert!(
                    doc.contains(&format!("`{name}`")) || doc.contains(&format!("/{name}`")),
                    "docs/kernel.md does not say what {dir}/{name} is"
                );
                named += 1;
            }
        }
        assert!(named > 30, "only {named} files found");
    }

    #[test]
    fn the_dependency_list_in_the_map_is_the_manifests_own() {
        let packages = crate::build::workspace_packages().expect("cargo metadata");
        let ours: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
        let map = architecture();
        for package in &packages {
            let name = package["name"].as_str().expect("a package name");
            let deps = |dev: bool| {
                let mut names: Vec<&str> = package["dependencies"]
                    .as_array()
                    .expect("dependencies")
                    .iter()
                    .filter(|d| (d["kind"].as_str() == Some("dev")) == dev)
                    .filter_map(|d| d["name"].as_str())
                    .filter(|d| ours.contains(d))
                    .collect();
                names.sort_unstable();
                names.dedup();
                names
            };
            let (normal, tests) = (deps(false), deps(true));
            let tests: Vec<&str> = tests.into_iter().filter(|d| !normal.contains(d)).collect();
            let quoted = |names: &[&str]| {
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut line = format!(
                "- `{name}`: {}",
                if normal.is_empty() {
                    "nothing of Atoll's".to_string()
                } else {
                    quoted(&normal)
                }
            );
            if !tests.is_empty() {
                line.push_str(&format!("; its tests also on {}", quoted(&tests)));
            }
            assert!(
                map.lines().any(|l| l == line),
                "docs/architecture.md's dependency list should have the line\n{line}"
            );
        }
        // Every line of the list's shape names a crate that exists.
        let listed = map
            .lines()
            .filter_map(|l| l.strip_prefix("- `")?.split_once("`: "))
            .filter(|(_, deps)| {
                deps.starts_with("nothing of Atoll's") || deps.starts_with("`atoll-")
            })
            .filter(|(name, _)| !ours.contains(name))
            .map(|(name, _)| name)
            .collect::<Vec<_>>();
        assert!(
            listed.is_empty(),
            "docs/architecture.md lists crates that do not exist: {listed:?}"
        );
    }
}
