// The fer-client commands. Each takes the command's own argv (argv[0] is the
// command name) and returns the process exit status: 0 on success, 1 when
// something failed (one line on stderr says what), 2 for a bad command line.
#ifndef FER_CLIENT_COMMANDS_H_
#define FER_CLIENT_COMMANDS_H_

namespace fer::client {

int RunClassify(int argc, char** argv);  // classify_command.cc
int RunStream(int argc, char** argv);    // stream_command.cc
int RunBench(int argc, char** argv);     // bench_command.cc
int RunInfo(int argc, char** argv);      // info_health_command.cc
int RunHealth(int argc, char** argv);    // info_health_command.cc

}  // namespace fer::client

#endif  // FER_CLIENT_COMMANDS_H_
