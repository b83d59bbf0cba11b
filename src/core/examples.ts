/** Two or three examples per verb, shown at the end of `loom <verb> --help`. Each runs as printed once its
 * data exists (`churn` is a data object's label: `loom ingest --source churn.csv` makes it). */
export const EXAMPLES: Record<string, string[]> = {
  setup: ["loom setup", "loom setup --json"],
  doctor: ["loom doctor", "loom doctor --json"],
  connect: ["loom connect warehouse postgresql://me@db:5432/sales", "loom connect --list"],
  ingest: ["loom ingest --source churn.csv", "loom ingest --source sqlite:///shop.db --table orders --name orders", "loom ingest --source churn.csv --new"],
  datasets: ["loom datasets", "loom datasets --json"],
  eda: ["loom eda --dataset churn --target churned", "loom eda --dataset IngestDataset/latest --target churned --time signup_at"],
  viz: ["loom viz --dataset churn --target churned", "loom viz --run OptimizeFlow/latest"],
  features: ["loom features --dataset churn --target churned --from EdaFlow/latest", "loom features --dataset churn --target churned"],
  run: [
    'loom run --dataset churn --target churned --metric "Maximize ROC-AUC on a held-out split."',
    'loom run --dataset churn --target churned --metric "Maximize ROC-AUC" --model-provider offline --steps 20',
    "loom run --resume OptimizeFlow/latest --steps 10",
  ],
  train: ["loom train --dataset events --objective next-event --budget probe", "LOOM_MODEL_BUILDER_PROVIDER=local loom train --dataset events --objective embedding --budget probe"],
  validate: ["loom validate --dataset churn --target churned --threshold 0.75", "loom validate --model OptimizeFlow/latest", "loom validate --dataset churn --target churned --sensitive gender"],
  report: ["loom report --run ValidateFlow/latest", "loom report --experiment churn-q3"],
  runs: ["loom runs", "loom runs --flow validate --limit 5", "loom runs --json"],
  open: ["loom open ValidateFlow/latest", "loom open churn", "loom eda --dataset churn --target churned --open"],
};
