// Subcommands of fer-model. Each takes main's argc/argv with argv[0] set to
// the subcommand's name, parses its own flags and returns the process exit
// code (0 on success; non-zero after one clear line on stderr).
#ifndef FER_MODEL_TOOLS_COMMANDS_H_
#define FER_MODEL_TOOLS_COMMANDS_H_

namespace fer {

int RunInit(int argc, char** argv);   // Writes a freshly initialised weight file.
int RunInfo(int argc, char** argv);   // Prints a weight file's meta and parameter count.
int RunBench(int argc, char** argv);  // Raw forward throughput and latency.
// Packs a data set (image folder, Aff-Wild2, FER2013 CSV).
int RunPack(int argc, char** argv);
int RunTrain(int argc, char** argv);    // The paper's training recipe on packed sets.
int RunEval(int argc, char** argv);     // Accuracy, F1, score and confusion matrix.
int RunConvert(int argc, char** argv);  // Rewrites a weight file, optionally at fp16.
// Attention maps of a few faces as a picture and CSV.
int RunExplain(int argc, char** argv);

}  // namespace fer

#endif  // FER_MODEL_TOOLS_COMMANDS_H_
