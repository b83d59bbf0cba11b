"""The reference: a bare two-step Metaflow flow (start → end) with one card, nothing else."""
from metaflow import FlowSpec, card, step


class BareFlow(FlowSpec):
    @card(type="blank")
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BareFlow()
