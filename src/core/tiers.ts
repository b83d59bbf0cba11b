export const TIERS = ["read-only", "workspace-write", "expensive", "irreversible"] as const;
export type Tier = (typeof TIERS)[number];

export const TIER_NOTE: Record<Tier, string> = {
  "read-only": "never prompts",
  "workspace-write": "writes only to the workspace / Metaflow, with a one-line note",
  expensive: "shows its cost before it fires; asks when cost or data boundary exceed the workspace limits",
  irreversible: "always asks (deny-first y/N); denied when it cannot ask",
};
