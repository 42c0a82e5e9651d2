// The learning rate of every replica at every step, from one function: the update, the metrics, the console and
// the report all read it here.
import Config
import Numerics
import Optimizers

/// The configured rates scaled to the global batch (`schedule.batch_scaling`), then scheduled over the run.
struct LearningRates {
    let schedule: RunConfig.Schedule
    /// Each replica's base rate: its `optimizer.lr`, scaled to the global batch.
    let base: [Double]
    let totalSteps: Int

    init(schedule: RunConfig.Schedule, configured: [Double], globalBatch: Int, totalSteps: Int) {
        self.schedule = schedule
        self.totalSteps = totalSteps
        base = configured.map {
            schedule.batchScaling.scale($0, batch: globalBatch, referenceBatch: schedule.referenceBatch ?? globalBatch)
        }
    }

    /// The rate replica `replica` uses in step `step` (counted from 1).
    func rate(replica: Int, step: Int) -> Double {
        schedule.rate.rate(step: step, base: base[replica], totalSteps: totalSteps)
    }

    /// How the rates are set, for titles: " (linear-scaled at batch 128), cosine schedule after 50 warmup steps".
    var scheduleText: String {
        let r = schedule.rate
        return (schedule.batchScaling == .none ? "" : " (\(schedule.batchScaling.rawValue)-scaled at batch \(schedule.referenceBatch!))")
            + (r.kind == .constant && r.warmupSteps == 0 ? "" : ", \(r.kind.rawValue) schedule")
            + (r.warmupSteps > 0 ? " after \(r.warmupSteps) warmup steps" : "")
    }
}
