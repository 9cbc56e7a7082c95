//! Rules about the repository itself, checked by its host tests: it stands alone, so no
//! file points at a path outside it.

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
}
