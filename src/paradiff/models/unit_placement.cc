#include "paradiff/models/unit_placement.h"

#include "paradiff/core/error.h"

namespace paradiff::models {

namespace {

// The tensors read ahead for one unit; a dtype other than the one read falls back to the file.
class PrefetchedWeights : public WeightSource {
 public:
  PrefetchedWeights(const WeightSource& base, std::map<std::string, Tensor> ready)
      : base_(base), ready_(std::move(ready)) {}
  std::string describe() const override { return base_.describe(); }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& [name, t] : ready_) out.push_back(name);
    return out;
  }
  bool contains(const std::string& name) const override { return ready_.count(name) != 0; }
  std::vector<int64_t> shape(const std::string& name) const override { return base_.shape(name); }
  Tensor read(const std::string& name, DType want) const override {
    const Tensor& t = ready_.at(name);
    return t.dtype() == want ? t : base_.read(name, want);
  }

 private:
  const WeightSource& base_;
  std::map<std::string, Tensor> ready_;
};

}  // namespace

UnitPlacement::UnitPlacement(const parallel::DeviceMap& map, std::vector<std::string> units,
                             const std::vector<std::string>& tensor_names,
                             dist::Communicator& group)
    : assignment_(map, std::move(units), tensor_names, group.size()), group_(&group) {}

bool UnitPlacement::binds_tensor(const std::string& name) const {
  for (const std::string& unit : assignment_.units())
    if (name.size() > unit.size() && name.compare(0, unit.size(), unit) == 0 &&
        name[unit.size()] == '.')
      return binds(unit);
  return true;
}

void UnitPlacement::require_one_owner(const std::vector<std::string>& units,
                                      const std::string& why) const {
  // A "disk" unit runs on rank 0.
  auto where = [this](const std::string& unit) {
    return assignment_.on_disk(unit) ? std::string("\"disk\", run by rank 0")
                                     : str_cat("rank ", owner(unit));
  };
  for (size_t i = 1; i < units.size(); ++i)
    PARADIFF_CHECK(owner(units[i]) == owner(units[0]), "placement: ", units[0], " (",
                   where(units[0]), ") and ", units[i], " (", where(units[i]),
                   ") must be on one rank: ", why);
}

std::shared_ptr<const UnitPlacement> place_transformer_units(
    const parallel::DeviceMap& map, std::vector<std::string> units, size_t embedders,
    const std::vector<std::string>& tensor_names, dist::Communicator& group) {
  PARADIFF_ASSERT(units.size() >= embedders + 3);
  const std::vector<std::string> start(units.begin() + 1, units.begin() + 1 + embedders);
  const std::vector<std::string> head(units.end() - 2, units.end());
  auto placement = std::make_shared<UnitPlacement>(map, std::move(units), tensor_names, group);
  placement->require_one_owner(start, "they start the joint hidden states together");
  placement->require_one_owner(head, "they form the output head");
  return placement;
}

std::vector<parallel::Stage> hidden_state_chain(const parallel::StageAssignment& assignment,
                                                size_t first) {
  std::vector<parallel::Stage> chain;
  for (size_t u = first; u < assignment.units().size(); ++u) {
    if (chain.empty() || chain.back().rank != assignment.owner(u))
      chain.push_back({assignment.owner(u), u, 0});
    ++chain.back().count;
  }
  return chain;
}

std::map<std::string, Tensor> read_unit(const WeightSource& source, const std::string& unit,
                                        DType compute) {
  std::map<std::string, Tensor> out;
  for (const std::string& name : source.names()) {
    if (name.rfind(unit + ".", 0) != 0) continue;
    Tensor t = source.read(name, source.shape(name).size() == 2 ? compute : DType::F32);
    const auto* bytes = static_cast<const volatile unsigned char*>(t.raw_data());
    unsigned sum = 0;
    for (size_t i = 0; i < t.nbytes(); i += 4096) sum += bytes[i];
    (void)sum;
    out.emplace(name, std::move(t));
  }
  return out;
}

UnitStreamer::UnitStreamer(const parallel::StageAssignment& assignment, int rank, size_t first,
                           const WeightSource& source, DType compute)
    : assignment_(assignment), source_(source), compute_(compute) {
  for (size_t u = first; u < assignment.units().size(); ++u)
    if (assignment.on_disk(u) && assignment.owner(u) == rank) units_.push_back(u);
  read_ahead();
}

UnitStreamer::~UnitStreamer() {
  // A forward that failed part-way leaves a read in flight: let it finish before the source
  // (and this object) go away.
  if (ahead_.valid()) ahead_.wait();
}

void UnitStreamer::read_ahead() {
  if (next_ < units_.size())
    ahead_ = std::async(std::launch::async, [this, unit = assignment_.units()[units_[next_]]] {
      return read_unit(source_, unit, compute_);
    });
}

const WeightSource& UnitStreamer::next(size_t unit) {
  PARADIFF_ASSERT(next_ < units_.size() && units_[next_] == unit);
  current_ = std::make_unique<PrefetchedWeights>(source_, ahead_.get());
  ++next_;
  read_ahead();  // the next disk unit's tensors come in while this one computes
  return *current_;
}

}  // namespace paradiff::models
