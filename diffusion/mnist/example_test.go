package mnist_test

import (
	"fmt"
	"log"

	"github.com/godiffusion/godiffusion/diffusion/mnist"
)

// A Batcher over a tiny in-memory data set (the real one comes from
// mnist.Load(mnist.DefaultDir())): shuffled, reproducible batches of float32
// NHWC images in [-1, 1], resumable from a saved Position.
func Example() {
	d := &mnist.Dataset{
		Images: make([][mnist.PixelsPerImage]uint8, 10),
		Labels: []uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
	}
	d.Images[3][14*mnist.Cols+14] = 255 // one bright pixel in digit "3"

	b, err := mnist.NewBatcher(d, mnist.BatcherConfig{BatchSize: 4, Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("steps per epoch:", b.StepsPerEpoch()) // 10/4, remainder dropped
	first := b.Next()
	fmt.Println("shape:", first.Images.Shape(), "position:", first.Position)
	saved := b.Position() // store with the checkpoint

	// A resumed run starting at the saved position sees the same data.
	next := b.Next()
	resumed, err := mnist.NewBatcher(d, mnist.BatcherConfig{BatchSize: 4, Seed: 1, Start: saved})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same batch after resuming:", fmt.Sprint(resumed.Next().Labels) == fmt.Sprint(next.Labels))
	fmt.Println("background value:", first.Images.Data[0])
	fmt.Println("MNIST train at batch 64:", mnist.StepsPerEpoch(60000, 64, mnist.DropRemainder),
		"full batches, or", mnist.StepsPerEpoch(60000, 64, mnist.KeepRemainder), "with the remainder")
	// Output:
	// steps per epoch: 2
	// shape: [4 32 32 1] position: {0 0}
	// same batch after resuming: true
	// background value: -1
	// MNIST train at batch 64: 937 full batches, or 938 with the remainder
}

// Loading the real data: DefaultDir finds the files in the module cache (or
// $MNIST_DIR); a --data flag would go through ResolveDir.
func ExampleLoad() {
	dir, err := mnist.ResolveDir("") // e.g. the value of --data
	if err != nil {
		log.Fatal(err) // names the folders tried and how to fix it
	}
	train, err := mnist.Load(dir, mnist.Train)
	if err != nil {
		log.Fatal(err)
	}
	images := train.Preprocess(mnist.DefaultSize) // [60000, 32, 32, 1], 245 MB
	fmt.Println(train.Len(), images.Shape())
}
