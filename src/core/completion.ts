/** `loom completion bash|zsh|fish`: tab completion scripts generated from the registry (verbs, aliases, flags). */
export interface CompletionVerb {
  name: string;
  aliases: string[];
  flags: string[];
}

const q = (s: string) => s.replace(/[^\w.-]/g, "");

export function completionScript(shell: string, verbs: CompletionVerb[]): string | null {
  const names = verbs.flatMap((v) => [v.name, ...v.aliases]).concat(["completion", "help"]).map(q);
  const flagsOf = (v: CompletionVerb) => v.flags.map((f) => `--${q(f)}`).concat("--help").join(" ");
  if (shell === "bash") {
    const cases = verbs.map((v) => `    ${[v.name, ...v.aliases].map(q).join("|")}) flags="${flagsOf(v)}" ;;`).join("\n");
    return `# loom bash completion: eval "$(loom completion bash)" (or save it under ~/.local/share/bash-completion/completions/loom)
_loom() {
  local cur=\${COMP_WORDS[COMP_CWORD]} verb=\${COMP_WORDS[1]} flags=""
  if [ "$COMP_CWORD" -eq 1 ]; then COMPREPLY=($(compgen -W "${names.join(" ")} --help --version -V" -- "$cur")); return; fi
  case "$verb" in
${cases}
    completion) flags="bash zsh fish" ;;
  esac
  if [[ "$cur" == -* || "$verb" == completion ]]; then COMPREPLY=($(compgen -W "$flags" -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -o default -F _loom loom
`;
  }
  if (shell === "zsh") {
    const cases = verbs.map((v) => `    ${[v.name, ...v.aliases].map(q).join("|")}) compadd -- ${flagsOf(v)} ;;`).join("\n");
    return `#compdef loom
# loom zsh completion: eval "$(loom completion zsh)" (or save it as _loom on your $fpath)
_loom() {
  if (( CURRENT == 2 )); then compadd -- ${names.join(" ")}; return; fi
  if [[ $words[CURRENT] != -* ]]; then _files; return; fi
  case $words[2] in
${cases}
    completion) compadd -- bash zsh fish ;;
  esac
}
compdef _loom loom
`;
  }
  if (shell === "fish") {
    const lines = [
      "# loom fish completion: loom completion fish | source (or save it as ~/.config/fish/completions/loom.fish)",
      "complete -c loom -f",
      ...verbs.map((v) => `complete -c loom -n __fish_use_subcommand -a ${q(v.name)}`),
      ...verbs.flatMap((v) => v.aliases.map((a) => `complete -c loom -n __fish_use_subcommand -a ${q(a)}`)),
      "complete -c loom -n __fish_use_subcommand -a completion",
      "complete -c loom -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'",
      ...verbs.flatMap((v) => v.flags.map((f) => `complete -c loom -n '__fish_seen_subcommand_from ${[v.name, ...v.aliases].map(q).join(" ")}' -l ${q(f)}`)),
    ];
    return lines.join("\n") + "\n";
  }
  return null;
}
